"""`photoseek generate PROMPT` and `photoseek fetch-vqgan NAME`: VQGAN+CLIP from the command line.

A thin click layer over generation.optimize / generation.output; the top-level CLI adds these commands
and hands them a Settings object as ctx.obj.
"""

from __future__ import annotations

from pathlib import Path

import click
from tqdm import tqdm

from generation.augments import AUGMENT_CODES, DEFAULT_AUGMENTS
from generation.fetch import PUBLISHED, FetchError, fetch_vqgan
from generation.output import slugify

AUGMENT_HELP = "; ".join(f"{k}: {v}" for k, v in AUGMENT_CODES.items())


@click.command("generate")
@click.argument("prompt")
@click.option(
    "--size",
    default="256x256",
    show_default=True,
    help="WxH; rounded down to whole VQGAN tokens (multiples of 16 for an f16 VQGAN).",
)
@click.option("--steps", default=300, show_default=True, type=int)
@click.option("--seed", type=int, help="Seed of every random draw; default: a random one, kept in the PNG.")
@click.option(
    "--init",
    "init_image",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Start from this image instead of random codebook tokens.",
)
@click.option(
    "--init-weight",
    default=0.0,
    show_default=True,
    type=float,
    help="Keep the latent near the starting one (the init image's): an MSE loss on the latent "
    "times this / 2, as in the reference notebook. 0: off.",
)
@click.option(
    "--image-prompt",
    "image_prompts",
    multiple=True,
    metavar="PATH[:WEIGHT[:STOP]]",
    help="An image as a target, weighted like a text part (repeatable). Library images: #ID in the prompt.",
)
@click.option("--cutouts", default=32, show_default=True, type=int)
@click.option(
    "--cut-pow",
    default=1.0,
    show_default=True,
    type=float,
    help="Cutout size exponent: >1 favours small cutouts (detail), <1 large ones (composition).",
)
@click.option(
    "--augments",
    default=DEFAULT_AUGMENTS,
    show_default=True,
    help=f"Augmentations of the cutouts, comma-separated, or 'none'. {AUGMENT_HELP}.",
)
@click.option("--lr", default=0.1, show_default=True, type=float, help="Adam's learning rate.")
@click.option(
    "--preview-every",
    default=0,
    show_default=True,
    type=int,
    help="Write a preview PNG to DATA_DIR/previews every N steps (0: none).",
)
@click.option(
    "--vqgan",
    "vqgan_spec",
    metavar="CONFIG.yaml,MODEL.ckpt",
    help="A taming-transformers VQGAN (default: the vqgan setting; unset, the tiny toy-world "
    "VQGAN shipped for demos and tests). `photoseek fetch-vqgan` downloads published ones.",
)
@click.pass_context
def generate(
    ctx: click.Context,
    prompt: str,
    size: str,
    steps: int,
    seed: int | None,
    init_image: Path | None,
    init_weight: float,
    image_prompts: tuple[str, ...],
    cutouts: int,
    cut_pow: float,
    augments: str,
    lr: float,
    preview_every: int,
    vqgan_spec: str | None,
) -> None:
    """Generate an image for PROMPT ("text:weight:stop|other text:-0.5|#42:0.3") and add it to the library.

    Parts are separated by '|'; each is TEXT[:WEIGHT[:STOP]] as in nerdyrodent's VQGAN-CLIP (weight 1,
    stop -inf by default); '#ID' is an image of the library as a target.
    """  # fmt: skip
    # Imported here so that building the top-level CLI (and `photoseek --help`) does not load torch.
    from generation.inputs import InputError, open_library_image
    from generation.optimize import GenerationOptions, generate_image, parse_size, record_params
    from generation.output import save_generated
    from generation.prompts import parse_prompts
    from generation.vqgan import VQGANConfigError, load_vqgan_spec
    from indexer.cli import open_library
    from indexer.errors import PhotoseekError

    try:
        width, height = parse_size(size)
        options = GenerationOptions(
            width=width, height=height, steps=steps, seed=seed, cutouts=cutouts, lr=lr, cut_pow=cut_pow,
            init_image=str(init_image) if init_image else None, init_weight=init_weight, augments=augments,
            image_prompts=image_prompts, preview_every=preview_every,
        ).resolved()  # fmt: skip
        parse_prompts(prompt)
        # Guide with the library's own model unless --model says otherwise: it is the one that is here.
        library = open_library(ctx.obj)
        settings = library.settings
        encoder = library.torch_encoder()  # the optimisation needs gradients through CLIP
        vqgan = load_vqgan_spec(vqgan_spec or settings.vqgan, device=encoder.device)
    except (ValueError, VQGANConfigError, PhotoseekError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    image_source = lambda image_id: open_library_image(library.catalog, image_id)  # noqa: E731

    previews = settings.layout.previews
    stem = f"{slugify(prompt)}-s{options.seed}"
    click.echo(f"seed {options.seed}, VQGAN {vqgan.label}", err=True)
    with tqdm(total=options.steps, desc="generating", unit="step") as bar:

        def progress(step: int, total: int, preview) -> None:
            bar.update(1)
            if preview is not None:
                previews.mkdir(parents=True, exist_ok=True)
                path = previews / f"{stem}-step{step:05d}.png"
                preview.save(path)
                bar.set_postfix_str(str(path))

        try:
            image = generate_image(encoder, vqgan, prompt, options, progress, image_source=image_source)
        except (InputError, ValueError, FileNotFoundError) as exc:
            raise click.ClickException(str(exc)) from exc
    path = save_generated(image, prompt, record_params(options, encoder, vqgan), settings.layout.generated)
    click.echo(str(path))


@click.command("fetch-vqgan")
@click.argument("name", type=click.Choice(sorted(PUBLISHED)), default="vqgan_imagenet_f16_16384")
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the two files [DATA_DIR/vqgan].",
)
@click.option("--base-url", hidden=True, help="Fetch from this mirror instead (same file names).")
@click.option("--timeout", default=15.0, show_default=True, help="Seconds to wait for the server to answer.")
@click.pass_obj
def fetch_vqgan_command(settings, name: str, dest: Path | None, base_url: str | None, timeout: float) -> None:
    """Download a published taming-transformers VQGAN (config + checkpoint; needs internet once).

    Then set `vqgan = "CONFIG.yaml,MODEL.ckpt"` in photoseek.toml (the command prints the line), and
    `photoseek serve` and `photoseek generate` use it.
    """
    folder = dest or settings.layout.vqgans
    try:
        config, checkpoint = fetch_vqgan(name, folder, base_url=base_url, timeout=timeout, echo=click.echo)
    except FetchError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f'{name} is ready. Add to photoseek.toml:\n  vqgan = "{config},{checkpoint}"')
