"""Seconds per VQGAN+CLIP image: `python -m bench.generation --device cuda` (the real figure) or
`--device cpu --steps 2` (a smoke number, extrapolated to 300 steps).

Real architectures, seeded random weights (the compute is the same as with trained ones): CLIP
ViT-B-32 and the VQGAN of vqgan_imagenet_f16_16384 (the checkpoint most VQGAN+CLIP notebooks use).
Every step is one decoder forward + backward at full size and a CLIP forward + backward over the
cutouts, so seconds per image = steps x seconds per step; the first step (allocations, cuDNN autotune)
is timed separately and left out of the rate. Appends a section to bench/RESULTS.md and writes
bench/out/generation.json.
"""

from __future__ import annotations

import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import click
import torch

from generation.optimize import GenerationOptions, generate_image
from generation.vqgan import VQGAN, VQGANConfig

HERE = Path(__file__).parent
RESULTS = HERE / "RESULTS.md"
CLIP_SPEC = "ViT-B-32:random"
REFERENCE_STEPS = 300

# taming-transformers' configs/vqgan_imagenet_f16_16384.yaml (model part), as published.
F16_16384 = {
    "model": {
        "target": "taming.models.vqgan.VQModel",
        "params": {
            "embed_dim": 256,
            "n_embed": 16384,
            "ddconfig": {
                "double_z": False, "z_channels": 256, "resolution": 256, "in_channels": 3, "out_ch": 3,
                "ch": 128, "ch_mult": [1, 1, 2, 2, 4], "num_res_blocks": 2, "attn_resolutions": [16],
                "dropout": 0.0,
            },  # fmt: skip
        },
    }
}


def random_f16_vqgan(device: str) -> VQGAN:
    torch.manual_seed(0)
    model = VQGAN(VQGANConfig.from_dict(F16_16384))
    model.label = "vqgan_imagenet_f16_16384 (random weights)"
    return model.requires_grad_(False).eval().to(device)


def time_one(encoder, vqgan: VQGAN, side: int, steps: int, cutouts: int) -> dict:
    options = GenerationOptions(width=side, height=side, steps=steps + 1, cutouts=cutouts, seed=0)
    marks: list[float] = []

    def progress(step: int, total: int, preview) -> None:
        if encoder.device == "cuda":
            torch.cuda.synchronize()
        marks.append(time.perf_counter())

    if encoder.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    generate_image(encoder, vqgan, "a lighthouse on a cliff at sunset", options, progress)
    per_step = (marks[-1] - marks[0]) / steps
    row = {
        "size": f"{side}x{side}",
        "steps_timed": steps,
        "cutouts": cutouts,
        "first_step_s": round(marks[0] - start, 3),
        "s_per_step": round(per_step, 4),
        "s_per_image_300": round(per_step * REFERENCE_STEPS, 1),
    }
    if encoder.device == "cuda":
        row["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return row


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def append_results(rows: list[dict], device: str, note: str) -> None:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "",
        f"## VQGAN+CLIP generation, {device} ({device_name(device)}), {stamp}",
        "",
        f"`python -m bench.generation --device {device}`: {CLIP_SPEC}, vqgan_imagenet_f16_16384 "
        "architecture, random weights, Adam on the latent. s/image extrapolates s/step to "
        f"{REFERENCE_STEPS} steps (first step excluded).",
        "",
        "| size | cutouts | steps timed | first step (s) | s/step | s/image at 300 steps | peak GPU GiB |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['cutouts']} | {r['steps_timed']} | {r['first_step_s']} | {r['s_per_step']} "
            f"| {r['s_per_image_300']} | {r.get('peak_gpu_gib', '-')} |"
        )
    if note:
        lines += ["", note]
    with RESULTS.open("a") as f:  # append only: other benchmarks write their own sections here
        f.write("\n".join(lines) + "\n")


@click.command()
@click.option("--device", default="auto", type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--steps", default=20, show_default=True, help="Steps timed per size (after one warm-up).")
@click.option("--sizes", default="256,512", show_default=True)
@click.option("--cutouts", default=32, show_default=True)
@click.option("--threads", default=2, show_default=True, help="torch CPU threads.")
@click.option("--note", default="", help="A line added under the table.")
@click.option("--no-record", is_flag=True, help="Print only; leave RESULTS.md alone.")
def main(device: str, steps: int, sizes: str, cutouts: int, threads: int, note: str, no_record: bool) -> None:
    from indexer.encoder import load_encoder, pick_device

    torch.set_num_threads(threads)
    device = pick_device(device)
    encoder = load_encoder(CLIP_SPEC, device)
    vqgan = random_f16_vqgan(device)
    rows = []
    for side in (int(s) for s in sizes.split(",")):
        rows.append(time_one(encoder, vqgan, side, steps, cutouts))
        click.echo(json.dumps(rows[-1]))
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "generation.json").write_text(json.dumps({"device": device_name(device), "rows": rows}, indent=1))
    if not no_record:
        append_results(rows, device, note)


if __name__ == "__main__":
    main()
