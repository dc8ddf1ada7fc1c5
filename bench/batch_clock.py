"""Run photoseek's or rclip's command line with a clock on each image batch through the model.

    python bench/batch_clock.py OUT.json photoseek -- --data-dir D index FOLDER
    /path/to/rclip-venv/bin/python bench/batch_clock.py OUT.json rclip -- "a query"

A standalone script (no photoseek imports at module level) so that rclip's own interpreter can run
it. It wraps the one method through which each tool sends a batch of images to its model, records
(start, end, images) in wall-clock seconds, writes them to OUT.json at exit, and otherwise runs the
tool's real entry point unchanged. bench/rclip_compare.py turns the clocks into an indexing rate with
start-up excluded, the same way for both tools.
"""

from __future__ import annotations

import atexit
import functools
import json
import sys
import time

batches: list[tuple[float, float, int]] = []


def _clocked(fn):
    @functools.wraps(fn)
    def wrapper(self, images, *args, **kwargs):
        started = time.time()
        try:
            return fn(self, images, *args, **kwargs)
        finally:
            batches.append((started, time.time(), len(images)))

    return wrapper


def _patch_photoseek() -> None:
    """Wrap the encoder the run will use, importing only that one: importing indexer.encoder (torch,
    open_clip: seconds and ~600 MB) into an ONNX run would bill photoseek for what it does not load."""
    import os

    if os.environ.get("PHOTOSEEK_RUNTIME") == "torch":
        from indexer import encoder

        encoder.Encoder.encode_pixels = _clocked(encoder.Encoder.encode_pixels)
        return
    try:
        from indexer import onnx_towers  # onnxruntime and numpy (~0.2 s), which an index run loads anyway
    except ImportError:  # an older tree without the ONNX backend runs torch
        from indexer import encoder

        encoder.Encoder.encode_pixels = _clocked(encoder.Encoder.encode_pixels)
        return
    onnx_towers.OnnxImageTower.encode_pixels = _clocked(onnx_towers.OnnxImageTower.encode_pixels)


def _patch_rclip() -> None:
    from rclip import model

    model.Model.compute_preprocessed_image_features = _clocked(
        model.Model.compute_preprocessed_image_features
    )


def main() -> None:
    out, tool, sep, *args = sys.argv[1:]
    if sep != "--" or tool not in ("photoseek", "rclip"):
        raise SystemExit(__doc__)
    started = time.time()

    def save() -> None:
        with open(out, "w") as f:
            json.dump({"started": started, "batches": batches}, f)

    atexit.register(save)
    if tool == "photoseek":
        _patch_photoseek()
        from searchd.cli import main as entry
    else:
        _patch_rclip()
        from rclip.main import main as entry
    sys.argv = [tool, *args]
    entry()


if __name__ == "__main__":
    main()
