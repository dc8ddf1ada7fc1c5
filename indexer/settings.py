"""One frozen Settings object: defaults, then the data dir's photoseek.toml, then CLI/env overrides.

Nothing reads globals: the CLI builds a Settings and hands it to whatever it creates.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from indexer.layout import CONFIG_FILE, DataDir

DEFAULT_MODEL = "ViT-B-32-256:datacomp_s34b_b86k"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "photoseek"


@dataclass(frozen=True)
class Settings:
    """Every setting is documented in docs/settings.md (a test keeps the two in step)."""

    data_dir: Path = field(default_factory=default_data_dir)
    # NAME:PRETRAINED, NAME:/path/weights, NAME:random or "toy"; "": the library's own model, and
    # DEFAULT_MODEL for a new library (Library.open decides)
    model: str = ""
    device: str = "auto"  # auto, cpu, cuda, mps
    runtime: str = "auto"  # auto (ONNX Runtime on a CPU, torch on a GPU), onnx, torch
    onnx_precision: str = "int8"  # int8 (dynamic quantisation) or fp32; equivalence in bench/RESULTS.md
    roots: tuple[str, ...] = ()  # photo folders for `photoseek watch` with no arguments
    # indexing
    batch_size: int = 64  # images embedded and committed together
    workers: int = -1  # decoding processes; -1: one per core (0 decodes in the writer process)
    torch_threads: int = 0  # 0: torch's default
    gpu_decode: bool = True  # on CUDA, decode JPEGs on the GPU (nvJPEG) instead of in the workers
    queue_size: int = 256  # bound on decoded images waiting for the model (keeps memory flat)
    max_megapixels: float = 200.0  # larger images are refused as decompression bombs
    nice: int = 0  # added to the indexer's CPU niceness (NAS profile: 10)
    model_idle_unload_s: float = 0.0  # watch: unload the model after this idle time; 0 keeps it
    # watching
    poll_interval_s: float = 30.0  # polling observer interval (network shares)
    force_polling: bool = False  # poll every root, even where inotify would work
    settle_s: float = 2.0  # a file must stop changing for this long before it is indexed
    vector_save_interval_s: float = 60.0  # how often the watcher persists the vector index
    # search
    host: str = "127.0.0.1"
    port: int = 8765
    auth_token: str = ""  # needed to bind beyond loopback (or PHOTOSEEK_AUTH_TOKEN); a strong one
    allowed_hosts: tuple[str, ...] = ()  # host names searchd answers to, besides loopback and the bind one
    trusted_proxies: tuple[str, ...] = ()  # proxies whose X-Forwarded-For/-Proto count (docs/security.md)
    approximate_above: int = 200_000  # vectors; above this an approximate (IVF) index is used; 0: never
    ondisk_above: int = 5_000_000  # vectors; above this 8-bit codes instead of fp16 (docs/scale.md); 0: never
    max_upload_mb: float = 20.0
    max_upload_megapixels: float = 50.0  # images sent with a query (search by image, classify)
    upload_slots: int = 2  # uploaded images decoded at once; others wait
    thumb_size: int = 320
    # tags
    tag_threshold: float = 0.7  # calibrated score (0..1) at or above which a tag is suggested (docs/tags.md)
    vocabulary: str = ""  # a vocabulary file extending (or, with @replace, replacing) the built-in one
    # generation
    vqgan: str = ""  # CONFIG.yaml,MODEL.ckpt of a taming VQGAN; "": the tiny toy-world one (demos, tests)

    @property
    def layout(self) -> DataDir:
        """The data dir's files and folders (indexer/layout.py names them)."""
        return DataDir(self.data_dir)

    def library_roots(self, roots: tuple | list = ()) -> tuple[Path, ...]:
        """The given roots (else the `roots` setting), plus generated/ once generation has written there:
        generated images are indexed like any other photo."""
        chosen = [Path(r) for r in (roots or self.roots)]
        generated = self.layout.generated
        if chosen and generated.is_dir() and generated.resolve() not in {r.resolve() for r in chosen}:
            chosen.append(generated)
        return tuple(chosen)

    def decode_workers(self) -> int:
        return (os.cpu_count() or 1) if self.workers < 0 else self.workers

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def setting_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Settings)]


def load_settings(data_dir: Path | None = None, config: Path | None = None, **overrides) -> Settings:
    """Defaults < config file (explicit, else DATA_DIR/photoseek.toml) < PHOTOSEEK_* env < overrides."""
    if data_dir is None and os.environ.get("PHOTOSEEK_DATA_DIR"):
        data_dir = Path(os.environ["PHOTOSEEK_DATA_DIR"])
    base = Settings() if data_dir is None else Settings(data_dir=data_dir)
    values: dict = {}
    path = config or base.data_dir / CONFIG_FILE
    if path.is_file():
        with path.open("rb") as f:
            doc = tomllib.load(f)
        values.update(doc.get("photoseek", doc))
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    for name in fields:
        env = os.environ.get(f"PHOTOSEEK_{name.upper()}")
        if env is not None and name != "data_dir":
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(values) - set(fields)
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(sorted(unknown))} in {path}; see docs/settings.md")
    typed = {name: _coerce(fields[name].type, v) for name, v in values.items()}
    return dataclasses.replace(base, **typed)


def _coerce(type_name: str, value):
    if type_name == "Path":
        return Path(value).expanduser()
    if type_name == "bool" and isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on")
    if type_name in ("int", "float") and isinstance(value, str):
        return int(value) if type_name == "int" else float(value)
    if type_name.startswith("tuple") and isinstance(value, str):
        return tuple(p for p in value.split(os.pathsep) if p)
    if type_name.startswith("tuple"):
        return tuple(value)
    return value
