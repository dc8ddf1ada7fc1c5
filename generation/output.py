"""Generated images on disk: a PNG in the library's generated/ folder that carries its own prompt.

The prompt and parameters travel inside the file (PNG text chunks), not in a side table: the indexer
reads "photoseek:prompt" as the caption and marks the image generated, and a copy of the file
elsewhere still says how it was made. "Description" and "Software" are the standard PNG keywords
other viewers show.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

PROMPT_KEY = "photoseek:prompt"
PARAMS_KEY = "photoseek:params"
SOFTWARE = "photoseek (VQGAN+CLIP)"
SLUG_CHARS = 48


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:SLUG_CHARS].rstrip("-") or "image"


def save_generated(image: Image.Image, prompt: str, params: dict[str, Any], out_dir: Path) -> Path:
    """Write `image` as OUT_DIR/<utc time>-<prompt slug>-<random>.png with its prompt in text chunks.

    Written under a dot-name first and renamed into place, so a watcher never indexes half a PNG.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = PngImagePlugin.PngInfo()
    # add_text stores non-Latin-1 text as an iTXt (UTF-8) chunk by itself.
    info.add_text(PROMPT_KEY, prompt)
    info.add_text(PARAMS_KEY, json.dumps(params, sort_keys=True, default=str))
    info.add_text("Description", prompt)
    info.add_text("Software", SOFTWARE)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    name = f"{stamp}-{slugify(prompt)}-{secrets.token_hex(3)}.png"
    final = out_dir / name
    partial = out_dir / f".{name}.partial"
    try:
        image.save(partial, format="PNG", pnginfo=info)
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    return final


def read_generation_info(path: Path) -> tuple[str, dict[str, Any]] | None:
    """(prompt, params) of a PNG written by save_generated, or None for any other image."""
    with Image.open(path) as im:
        text = getattr(im, "text", {}) or {}
    if PROMPT_KEY not in text:
        return None
    try:
        params = json.loads(text.get(PARAMS_KEY, "{}"))
    except ValueError:
        params = {}
    return text[PROMPT_KEY], params
