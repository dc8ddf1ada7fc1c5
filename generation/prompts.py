"""Prompts as VQGAN+CLIP users write them: "a red circle:1|blue background:-0.5:-1.2|#42:0.5".

Parts are separated by "|". Each part is `TEXT[:WEIGHT[:STOP]]`, read as nerdyrodent's generate.py
reads it (split_prompt: split at the last two colons; defaults weight 1, stop -inf):

- WEIGHT scales the part's loss; a negative weight pushes the image away from that part.
- STOP is a floor on the part's (signed) spherical distance: once the distance falls below it, the
  part stops pulling (its gradient is cut; see optimize.prompt_loss). -inf, the default, never stops.
- `#ID` as the text is an image of the library used as a target (an image prompt), as in the search
  language; photos from elsewhere come as uploads or `photoseek generate --image-prompt PATH`.

Unlike the reference, a colon followed by words is part of the text ("sunset: golden hour"), where
generate.py would fail on float(" golden hour"). Numbers that would silently wreck the image are
refused with a sentence: NaN or infinite weights, weights beyond MAX_WEIGHT, a stop of +inf or NaN.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from indexer.errors import BadInput

PART_SEPARATOR = "|"
MAX_PROMPT_CHARS = 1000  # a CLIP text holds ~77 tokens; 1000 characters is 16 long parts
MAX_PARTS = 16  # each part is one CLIP encoding and one loss term per step
MAX_WEIGHT = 100.0  # |weight|; beyond this one part drowns the others and Adam's steps saturate
# The squared spherical distance of unit vectors lies in [0, pi^2/2]; a stop outside it either never
# or always cuts the gradient, so it is refused as a mistake (-inf, the default, is the way to say never).
MAX_STOP = math.pi**2 / 2
_NUMBER = re.compile(r"^\s*[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?|inf(?:inity)?|nan)\s*$", re.I)
_IMAGE_ID = re.compile(r"^#(\d{1,18})$")


class PromptError(BadInput):
    """The prompt cannot be used; the message says why and how to write it."""


@dataclass(frozen=True)
class WeightedPrompt:
    text: str
    weight: float = 1.0
    stop: float = -math.inf

    @property
    def image_id(self) -> int | None:
        """The library image's id when the part is `#ID` (an image prompt), else None."""
        m = _IMAGE_ID.match(self.text)
        return int(m.group(1)) if m else None


def split_prompt(part: str) -> tuple[str, float, float]:
    """`TEXT[:WEIGHT[:STOP]]` -> (text, weight, stop); trailing fields count only if they are numbers."""
    fields = part.rsplit(":", 2)
    numbers: list[float] = []
    # From the right: a field is a number only if every field right of it is one too.
    while len(fields) > 1 and len(numbers) < 2 and _NUMBER.match(fields[-1]):
        numbers.insert(0, float(fields.pop()))
    text = ":".join(fields).strip()
    weight, stop = (numbers + [1.0, -math.inf][len(numbers) :])[:2]
    return text, weight, stop


def parse_prompts(prompt: str) -> list[WeightedPrompt]:
    if len(prompt) > MAX_PROMPT_CHARS:
        raise PromptError(f"the prompt is {len(prompt)} characters long; the limit is {MAX_PROMPT_CHARS}")
    if "\x00" in prompt:
        raise PromptError("the prompt contains a NUL character")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") from JSON: no text can hold it
        raise PromptError("the prompt contains a lone surrogate (U+D800..U+DFFF), not text") from None
    parts = []
    for raw in prompt.split(PART_SEPARATOR):
        if not raw.strip():
            continue
        text, weight, stop = split_prompt(raw.strip())
        if not text:
            raise PromptError(
                f"the part {raw.strip()!r} has a weight but no text; write e.g. 'a red circle:2'"
            )
        check_weight(weight, stop, text)
        parts.append(WeightedPrompt(text, weight, stop))
    if not parts:
        raise PromptError(f"prompt {prompt!r} has no text; write e.g. 'a red circle' or 'a:1|b:-0.5'")
    if len(parts) > MAX_PARTS:
        raise PromptError(f"the prompt has {len(parts)} parts; the limit is {MAX_PARTS}")
    if all(p.weight <= 0 for p in parts):
        raise PromptError(f"prompt {prompt!r} has no positive weight: nothing to move towards")
    return parts


def check_weight(weight: float, stop: float, what: str) -> None:
    """Refuse a weight or stop that would give NaN losses (a black image) or be meaningless."""
    if not math.isfinite(weight):
        raise PromptError(
            f"the weight of {what!r} is {weight}; weights must be finite numbers between "
            f"-{MAX_WEIGHT:g} and {MAX_WEIGHT:g} (write 'text:WEIGHT:STOP', e.g. 'a red circle:1:-inf')"
        )
    if abs(weight) > MAX_WEIGHT:
        raise PromptError(
            f"the weight {weight:g} of {what!r} is out of range (-{MAX_WEIGHT:g}..{MAX_WEIGHT:g})"
        )
    if math.isnan(stop) or stop == math.inf:
        raise PromptError(
            f"the stop of {what!r} is {stop}; a stop is -inf (never stop, the default) or a distance "
            f"between -{MAX_STOP:.2f} and {MAX_STOP:.2f}"
        )
    if stop != -math.inf and abs(stop) > MAX_STOP:
        raise PromptError(
            f"the stop {stop:g} of {what!r} is out of range: signed distances lie between "
            f"-{MAX_STOP:.2f} and {MAX_STOP:.2f}, so it would never (or always) stop; use -inf for never"
        )
