"""`photoseek generate PROMPT`: VQGAN+CLIP from the command line, the PNG written into the library.

A thin click layer over generation.optimize / generation.output; the top-level CLI adds this command
and hands it a Settings object as ctx.obj.
"""

from __future__ import annotations

from pathlib import Path

import click
from tqdm import tqdm

from generation.output import slugify

PREVIEWS_DIR = "previews"  # under the data dir, outside generated/: previews must not be indexed


@click.command("generate")
@click.argument("prompt")
@click.option("--size", default="256x256", show_default=True,
              help="WxH; rounded down to whole VQGAN tokens (multiples of 16 for an f16 VQGAN).")
@click.option("--steps", default=300, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--init", "init_image", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Start from this image instead of random codebook tokens.")
@click.option("--init-weight", default=0.0, show_default=True,
              help="Also pull towards the init image's CLIP embedding with this weight.")
@click.option("--cutouts", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=0.1, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--preview-every", default=0, show_default=True, type=click.IntRange(min=0),
              help="Write a preview PNG to DATA_DIR/previews every N steps (0: none).")
@click.option("--vqgan", "vqgan_spec", metavar="CONFIG.yaml,MODEL.ckpt",
              help="A taming-transformers VQGAN, e.g. vqgan_imagenet_f16_16384.yaml,"
                   "vqgan_imagenet_f16_16384.ckpt. Default: the tiny toy-world VQGAN shipped for demos.")
@click.pass_context
def generate(
    ctx: click.Context,
    prompt: str,
    size: str,
    steps: int,
    seed: int,
    init_image: Path | None,
    init_weight: float,
    cutouts: int,
    lr: float,
    preview_every: int,
    vqgan_spec: str | None,
) -> None:
    """Generate an image for PROMPT ("text:weight|other text:-0.5") and add it to the library."""  # fmt: skip
    # Imported here so that building the top-level CLI (and `photoseek --help`) does not load torch.
    from generation.optimize import GenerationOptions, generate_image, parse_size, record_params
    from generation.output import save_generated
    from generation.vqgan import VQGANConfigError, load_default_vqgan, load_vqgan, parse_vqgan_spec
    from indexer.cli import effective_settings, setup_torch
    from indexer.encoder import ModelUnavailable, load_encoder

    # Guide with the library's own model unless --model says otherwise: it is the one that is here.
    settings = effective_settings(ctx.obj)
    setup_torch(settings)
    try:
        width, height = parse_size(size)
        options = GenerationOptions(
            width=width, height=height, steps=steps, seed=seed, cutouts=cutouts, lr=lr,
            init_image=str(init_image) if init_image else None, init_weight=init_weight,
            preview_every=preview_every,
        )  # fmt: skip
        encoder = load_encoder(settings.model, settings.device)
        if vqgan_spec:
            vqgan = load_vqgan(*parse_vqgan_spec(vqgan_spec), device=encoder.device)
        else:
            vqgan = load_default_vqgan(encoder.device)
    except (ValueError, VQGANConfigError, ModelUnavailable, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc

    previews = Path(settings.data_dir) / PREVIEWS_DIR
    stem = f"{slugify(prompt)}-s{seed}"
    with tqdm(total=steps, desc="generating", unit="step") as bar:

        def progress(step: int, total: int, preview) -> None:
            bar.update(1)
            if preview is not None:
                previews.mkdir(parents=True, exist_ok=True)
                path = previews / f"{stem}-step{step:05d}.png"
                preview.save(path)
                bar.set_postfix_str(str(path))

        image = generate_image(encoder, vqgan, prompt, options, progress=progress)
    path = save_generated(image, prompt, record_params(options, encoder, vqgan), settings.generated_dir)
    click.echo(str(path))
