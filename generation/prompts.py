"""Weighted prompts: "a red circle|a blue background:0.5|text:-0.3".

Parts are separated by "|"; each may end in ":WEIGHT" (default 1). A negative weight pushes the image
away from that text. A colon not followed by a number is part of the text ("sunset: golden hour").
"""

from __future__ import annotations

from dataclasses import dataclass

PART_SEPARATOR = "|"


@dataclass(frozen=True)
class WeightedPrompt:
    text: str
    weight: float = 1.0


def parse_prompts(prompt: str) -> list[WeightedPrompt]:
    parts = []
    for raw in prompt.split(PART_SEPARATOR):
        text, weight = _split_weight(raw.strip())
        if not text:
            continue
        parts.append(WeightedPrompt(text, weight))
    if not parts:
        raise ValueError(f"prompt {prompt!r} has no text; write e.g. 'a red circle' or 'a:1|b:-0.5'")
    if all(p.weight <= 0 for p in parts):
        raise ValueError(f"prompt {prompt!r} has no positive weight: nothing to move towards")
    return parts


def _split_weight(part: str) -> tuple[str, float]:
    text, sep, tail = part.rpartition(":")
    if sep:
        try:
            return text.strip(), float(tail)
        except ValueError:
            pass
    return part, 1.0
