"""`photoseek fetch-vqgan`: download a published taming-transformers VQGAN (a .yaml and a .ckpt).

The files are those the reference implementations download (nerdyrodent's download_models.sh); they
are written under a temporary name, renamed when complete, and the pair is loaded once to prove the
config and checkpoint match. Offline, the first request fails within `timeout` seconds with a sentence
saying how to bring the files here instead.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from indexer.errors import Unavailable

_HEIBOX = "https://heibox.uni-heidelberg.de/d/{}/files/?p=%2F{}&dl=1"
# name -> (config URL, checkpoint URL, approximate checkpoint size)
PUBLISHED: dict[str, tuple[str, str, str]] = {
    "vqgan_imagenet_f16_16384": (
        _HEIBOX.format("a7530b09fed84f80a887", "configs%2Fmodel.yaml"),
        _HEIBOX.format("a7530b09fed84f80a887", "ckpts%2Flast.ckpt"),
        "980 MB",
    ),
    "vqgan_imagenet_f16_1024": (
        _HEIBOX.format("8088892a516d4e3baf92", "configs%2Fmodel.yaml"),
        _HEIBOX.format("8088892a516d4e3baf92", "ckpts%2Flast.ckpt"),
        "958 MB",
    ),
    "vqgan_gumbel_f8_8192": (
        _HEIBOX.format("2e5662443a6b4307b470", "configs%2Fmodel.yaml"),
        _HEIBOX.format("2e5662443a6b4307b470", "ckpts%2Flast.ckpt"),
        "376 MB",
    ),
}
CHUNK = 1 << 20


class FetchError(Unavailable):
    """The download failed; the message says why and what to do instead."""


def fetch_vqgan(
    name: str,
    dest: Path,
    base_url: str | None = None,
    timeout: float = 15.0,
    echo: Callable[[str], None] = print,
) -> tuple[Path, Path]:
    """Download NAME.yaml and NAME.ckpt into `dest` (skipping files already there); returns their paths."""
    if name not in PUBLISHED:
        raise FetchError(f"unknown VQGAN {name!r}; choose one of {', '.join(sorted(PUBLISHED))}")
    config_url, ckpt_url, size = PUBLISHED[name]
    if base_url:
        config_url, ckpt_url = (f"{base_url.rstrip('/')}/{name}{ext}" for ext in (".yaml", ".ckpt"))
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    config, checkpoint = dest / f"{name}.yaml", dest / f"{name}.ckpt"
    for url, path, what in ((config_url, config, "config"), (ckpt_url, checkpoint, f"checkpoint, {size}")):
        if path.is_file():
            echo(f"{path} is already there")
            continue
        echo(f"downloading the {what} to {path}")
        _download(url, path, timeout, name)
    _check_pair(config, checkpoint)
    return config, checkpoint


def _download(url: str, path: Path, timeout: float, name: str) -> None:
    from tqdm import tqdm

    partial = path.with_name(f".{path.name}.partial")
    request = urllib.request.Request(url, headers={"User-Agent": "photoseek"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, partial.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=path.name) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
        os.replace(partial, path)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        partial.unlink(missing_ok=True)
        host = urlsplit(url).netloc or url
        reason = getattr(exc, "reason", exc)
        raise FetchError(
            f"could not download {path.name} from {host} ({reason}). Without internet here, run "
            f"`photoseek fetch-vqgan {name} --dest DIR` on a machine that has it, copy DIR to this one, "
            f'and set vqgan = "DIR/{name}.yaml,DIR/{name}.ckpt" in photoseek.toml'
        ) from exc


def _check_pair(config: Path, checkpoint: Path) -> None:
    """Load the pair once on the CPU: a truncated or mismatched download fails here, not in a job."""
    from generation.vqgan import load_vqgan

    try:
        load_vqgan(config, checkpoint)
    except ValueError as exc:
        bad = checkpoint.with_name(checkpoint.name + ".bad")
        shutil.move(checkpoint, bad)
        raise FetchError(f"{exc}; the checkpoint was moved to {bad}: run the command again") from exc
