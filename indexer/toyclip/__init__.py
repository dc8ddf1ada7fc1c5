"""A tiny open_clip CLIP trained on indexer.toyworld images, so tests get real semantics offline.

The architecture is registered in open_clip as "photoseek-toy" (the name is the config file's stem);
`toy_clip.pt` is an fp16 state dict for it. See README.md for how it was trained and how well it does.
"""

from __future__ import annotations

from pathlib import Path

MODEL_NAME = "photoseek-toy"
CONFIG_PATH = Path(__file__).resolve().parent / f"{MODEL_NAME}.json"
CHECKPOINT_PATH = Path(__file__).resolve().parent / "toy_clip.pt"


def register() -> None:
    """Make "photoseek-toy" known to open_clip (idempotent); open_clip is imported only here."""
    import open_clip

    if MODEL_NAME not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_PATH)
