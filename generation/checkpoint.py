"""Read the `state_dict` out of a taming-transformers `.ckpt` without pytorch-lightning installed.

The published checkpoints are whole pytorch-lightning training states: besides "state_dict" they
pickle lightning's callback objects (ModelCheckpoint, ...) and sometimes numpy scalars. A plain
`torch.load` then fails twice over: torch's safe `weights_only` unpickler refuses those classes, and
the unsafe one needs pytorch-lightning importable. We stay on the safe unpickler and allow each
foreign class as an inert stand-in of the same name: nothing from the file is ever executed, and
the tensors come out intact. Files in torch's old non-zip format are read the same way.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch

MAX_FOREIGN_CLASSES = 64  # lightning checkpoints pickle a handful; a file with more is not one of them
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+) was not an allowed global")


class _Inert:
    """Takes the place of a class we do not have; it accepts and keeps whatever the pickle gives it."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.args = args
        self.kwargs = kwargs

    def __setstate__(self, state: object) -> None:
        self.state = state


def _stand_in(qualified: str) -> type:
    module, _, name = qualified.rpartition(".")
    # The safe unpickler matches allowed globals by f"{__module__}.{__qualname__}".
    return type(name, (_Inert,), {"__module__": module, "__qualname__": name})


def read_checkpoint(path: Path) -> object:
    if not zipfile.is_zipfile(path):
        return _read_legacy(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):  # torch < 2.5
            raise ValueError(
                f"{path} pickles classes other than tensors (a pytorch-lightning checkpoint?); reading it "
                "safely needs torch >= 2.5, or save just its state_dict with torch.save"
            ) from exc
        foreign = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    with torch.serialization.safe_globals([_stand_in(name) for name in foreign]):
        return torch.load(path, map_location="cpu", weights_only=True)


def _read_legacy(path: Path) -> object:
    """torch's pre-1.6 format (a stream of pickles, not a zip): torch cannot list its classes up front,
    so the safe unpickler's refusals are read one by one, each class allowed as an inert stand-in."""
    allowed: list[type] = []
    for _ in range(MAX_FOREIGN_CLASSES):
        try:
            with torch.serialization.safe_globals(allowed):
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            found = _REFUSED_GLOBAL.search(str(exc))
            if found is None:
                raise ValueError(_not_a_checkpoint(path, exc)) from exc
            allowed.append(_stand_in(found.group(1)))
        except (RuntimeError, EOFError, ValueError) as exc:
            raise ValueError(_not_a_checkpoint(path, exc)) from exc
    raise ValueError(
        f"{path} is in torch's old (pre-1.6, non-zip) format and pickles more than {MAX_FOREIGN_CLASSES} "
        "classes besides tensors; re-save its state_dict with a current torch (torch.save) and pass that"
    )


def _not_a_checkpoint(path: Path, exc: Exception) -> str:
    with path.open("rb") as f:
        head = f.read(16)
    hint = (
        " (it starts like a web page: a download that saved an error page?)"
        if head.lstrip()[:1] == b"<"
        else ""
    )
    # torch's own message is a page of advice; its last part ("WeightsUnpickler error: ...") is the reason.
    reason = str(exc).rpartition("WeightsUnpickler error:")[2].strip().splitlines()[0][:200]
    return (
        f"{path} cannot be read as a PyTorch checkpoint{hint}: {reason}. "
        "Download the .ckpt again (photoseek fetch-vqgan), or re-save its state_dict with torch.save"
    )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a `.ckpt` ({"state_dict": {...}, ...}) or of a bare state_dict file."""
    if not path.is_file():
        raise FileNotFoundError(f"VQGAN checkpoint {path} does not exist")
    obj = read_checkpoint(path)
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} holds no state_dict of tensors; is it a taming-transformers .ckpt?")
    return state
