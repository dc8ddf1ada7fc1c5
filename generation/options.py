"""A generation job's options and their bounds, checked before any work (no torch: searchd validates
jobs here without loading the generator)."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, fields, replace
from typing import Any

from generation.augments import DEFAULT_AUGMENTS, parse_augments
from generation.prompts import MAX_PARTS

# Hard bounds (issue 12): a job's memory grows with its pixels, its time with steps x cutouts.
MIN_SIDE = 8
MAX_SIDE = 1024
MAX_PIXELS = MAX_SIDE * MAX_SIDE  # implied by the sides, so the API's schema states every size bound
MAX_STEPS = 5000
MAX_CUTOUTS = 128
MAX_LR = 5.0
MAX_CUT_POW = 10.0
MAX_INIT_WEIGHT = 100.0
MAX_SEED = 2**53 - 1  # seeds travel through JSON to the page: keep them exact as a JavaScript number
RANDOM_SEED_BITS = 32


class GenerationCancelled(Exception):
    """should_stop() returned True; raised between two steps."""


@dataclass(frozen=True)
class GenerationOptions:
    width: int = 256
    height: int = 256
    steps: int = 300
    seed: int | None = None  # None: a random seed, drawn by resolved() and recorded with the image
    cutouts: int = 32
    lr: float = 0.1
    cut_pow: float = 1.0
    init_image: str | None = None  # path of a start image (encoded by the VQGAN); CLI and job runner only
    # Crowson's init_weight: an MSE loss pulling the latent towards the starting latent (the init image's,
    # or the random start), times init_weight / 2. 0: off.
    init_weight: float = 0.0
    augments: str = DEFAULT_AUGMENTS  # kornia augmentation codes (generation.cutouts); "none" for none
    image_prompts: tuple[str, ...] = ()  # "PATH[:WEIGHT[:STOP]]" image files as targets (CLI only)
    preview_every: int = 0  # 0: no previews

    def __post_init__(self) -> None:
        _bounded("width", self.width, MIN_SIDE, MAX_SIDE)
        _bounded("height", self.height, MIN_SIDE, MAX_SIDE)
        if self.width * self.height > MAX_PIXELS:
            raise ValueError(
                f"size {self.width}x{self.height} is {self.width * self.height:,} pixels; the limit is "
                f"{MAX_PIXELS:,}: memory grows with the pixels"
            )
        _bounded("steps", self.steps, 1, MAX_STEPS)
        _bounded("cutouts", self.cutouts, 1, MAX_CUTOUTS)
        if self.seed is not None:
            _bounded("seed", self.seed, 0, MAX_SEED)
        _bounded("lr", self.lr, 0, MAX_LR, low_open=True)
        _bounded("cut_pow", self.cut_pow, 0, MAX_CUT_POW)
        _bounded("init_weight", self.init_weight, 0, MAX_INIT_WEIGHT)
        _bounded("preview_every", self.preview_every, 0, MAX_STEPS)
        parse_augments(self.augments)
        if len(self.image_prompts) > MAX_PARTS:
            raise ValueError(f"{len(self.image_prompts)} image prompts; the limit is {MAX_PARTS}")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> GenerationOptions:
        """Options from JSON-ish params; "size" may be "WxH" or [W, H]. Unknown keys and values of the
        wrong type are refused with a sentence naming the parameter."""
        params = dict(params)
        if "size" in params:
            params["width"], params["height"] = parse_size(params.pop("size"))
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ValueError(f"unknown generation parameter(s): {', '.join(map(str, unknown))[:200]}")
        values = {k: cast_param(k, str(known[k].type), v) for k, v in params.items()}
        return cls(**values)

    def to_params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def resolved(self) -> GenerationOptions:
        """The same options with a seed: a random one when none was given (nerdyrodent: torch.seed())."""
        return self if self.seed is not None else replace(self, seed=secrets.randbits(RANDOM_SEED_BITS))


def _bounded(name: str, value: float, low: float, high: float, low_open: bool = False) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value}")
    if value < low or (low_open and value == low) or value > high:
        lower = f"above {low:g}" if low_open else f"at least {low:g}"
        raise ValueError(f"{name} must be {lower} and at most {high:g}, not {value:g}")


def cast_param(name: str, type_name: str, value: Any) -> Any:
    """JSON value -> the field's type; bools are not numbers, 2.0 is an int, "many" is refused."""
    if type_name in ("int", "int | None"):
        if value is None and type_name == "int | None":
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"{name} must be a whole number, not {type(value).__name__}")
        try:
            number = float(value) if not isinstance(value, int) else value
        except ValueError:
            raise ValueError(f"{name} must be a whole number, not {str(value)[:40]!r}") from None
        if isinstance(number, float):
            if not math.isfinite(number) or number != int(number):
                raise ValueError(f"{name} must be a whole number, not {str(value)[:40]}")
            number = int(number)
        return number
    if type_name == "float":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"{name} must be a number, not {type(value).__name__}")
        try:
            return float(value)
        except (ValueError, OverflowError):
            raise ValueError(f"{name} must be a number, not {str(value)[:40]!r}") from None
    if type_name == "str":
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, not {type(value).__name__}")
        return value
    if type_name == "str | None":
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} must be a string, not {type(value).__name__}")
        return value
    if type_name.startswith("tuple"):
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{name} must be a list of strings")
        return tuple(value)
    return value


def parse_size(size: Any) -> tuple[int, int]:
    if isinstance(size, str):
        w, sep, h = size.lower().partition("x")
        if not sep or not w.strip().isdigit() or not h.strip().isdigit() or len(size) > 20:
            raise ValueError(f"size {size[:40]!r} is not WxH, e.g. 256x256")
        return int(w), int(h)
    if isinstance(size, list | tuple) and len(size) == 2:
        return cast_param("width", "int", size[0]), cast_param("height", "int", size[1])
    raise ValueError('size must be "WxH" (e.g. "256x256") or [W, H]')
