"""Where things live: every file and folder of a data dir, and the per-machine cache, named once.

A data dir belongs to one library:

    catalog.sqlite       the source of truth (rows, embeddings, changes, tags, jobs)
    vectors/             the FAISS indexes (a cache: deleted, they are rebuilt from the catalog)
    thumbs/              thumbnails by content hash (a cache)
    generated/           PNGs made by generation; indexed like any photo folder
    previews/            `photoseek generate --preview-every` snapshots (never indexed)
    generation-inputs/   start images uploaded for generation jobs, kept until the job ends
    vqgan/               VQGAN checkpoints `photoseek fetch-vqgan` downloaded
    writer.lock          held by the one writer (indexer/lock.py)
    watch-status.json    what `photoseek watch` is doing, for `photoseek status`
    serve.json           where a running `photoseek serve` listens (the CLI asks it instead of loading)
    sessions.json        searchd's login sessions (HMACs of their ids, mode 0600; searchd/sessions.py)
    photoseek.toml       this library's settings (indexer/settings.py)

The machine cache (XDG_CACHE_HOME/photoseek) holds what depends only on a model, not on a library:
the tag vocabulary's embeddings, exported model files. Every data dir on the machine shares it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

CONFIG_FILE = "photoseek.toml"
CATALOG_FILE = "catalog.sqlite"


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def catalog(self) -> Path:
        return self.root / CATALOG_FILE

    @property
    def vectors(self) -> Path:
        return self.root / "vectors"

    @property
    def thumbs(self) -> Path:
        return self.root / "thumbs"

    @property
    def generated(self) -> Path:
        return self.root / "generated"

    @property
    def previews(self) -> Path:
        return self.root / "previews"

    @property
    def generation_inputs(self) -> Path:
        return self.root / "generation-inputs"

    @property
    def vqgans(self) -> Path:
        return self.root / "vqgan"

    @property
    def writer_lock(self) -> Path:
        return self.root / "writer.lock"

    @property
    def watch_status(self) -> Path:
        return self.root / "watch-status.json"

    @property
    def serve_info(self) -> Path:
        return self.root / "serve.json"

    @property
    def sessions(self) -> Path:
        return self.root / "sessions.json"

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def legacy_tags(self) -> Path:
        """Where tag embeddings were cached per data dir before the machine cache (still skipped)."""
        return self.root / "tags"

    def not_photos(self) -> set[str]:
        """Folders of ours that a scan must never index, should the data dir lie inside a root.
        generated/ is not among them: generated images are photos of the library."""
        root = self.root.resolve()
        names = (self.thumbs, self.vectors, self.previews, self.generation_inputs, self.vqgans)
        names += (self.legacy_tags,)
        return {str(root / p.name) for p in names}


_TEMPORARY = re.compile(r"^\..+\.tmp(\d*)$")  # ".NAME.tmpPID": written, then renamed over NAME


def remove_stale_temporaries(*folders: Path) -> list[Path]:
    """Half-written files of processes that died before renaming them (a kill during a save); a file
    whose writer is alive is left alone. Call it holding the writer lock: then no other writer runs."""
    removed = []
    for folder in folders:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            m = _TEMPORARY.match(name)
            if m and not (m.group(1) and _alive(int(m.group(1)))):
                path = folder / name
                try:
                    path.unlink()
                    removed.append(path)
                except OSError:
                    pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def machine_cache_dir() -> Path:
    """Per-user cache shared by every library on this machine (PHOTOSEEK_CACHE_DIR overrides)."""
    if os.environ.get("PHOTOSEEK_CACHE_DIR"):
        return Path(os.environ["PHOTOSEEK_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "photoseek"
