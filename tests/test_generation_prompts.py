"""The prompt syntax and loss against the reference semantics (nerdyrodent's generate.py, Katherine
Crowson's notebook): `text:weight:stop` split at the last two colons, weight 1 and stop -inf by default,
a part's loss |w| * mean(sign(w) * distance) whose gradient is cut below the stop. Numbers that would
wreck an image silently are refused with a sentence."""

from __future__ import annotations

import math

import pytest
import torch

from generation.optimize import prompt_loss, spherical_distance
from generation.prompts import (
    MAX_PARTS,
    MAX_PROMPT_CHARS,
    PromptError,
    WeightedPrompt,
    parse_prompts,
    split_prompt,
)


def reference_split(prompt: str) -> tuple[str, float, float]:
    """The reference's reading, restated as an oracle: the last two colon-separated fields are weight
    and stop, missing ones default to 1 and -inf, and every field it takes must parse as a float."""
    fields = prompt.rsplit(":", 2)
    defaults = ["", "1", "-inf"]
    fields = fields + defaults[len(fields) :]
    return fields[0], float(fields[1]), float(fields[2])


@pytest.mark.parametrize(
    "part",
    ["a red circle", "a red circle:2", "a red circle:2:0.5", "blue:-0.5", "blue:-0.5:-1.5", "x:1:-inf",
     "a:b:1:0.25", "a photo of 1990:3", "ratio 16:9", "zero:0"],
)  # fmt: skip
def test_numeric_fields_read_as_the_reference_reads_them(part):
    assert split_prompt(part) == reference_split(part)


def test_a_colon_followed_by_words_stays_in_the_text():
    # The reference would fail on float(" golden hour"); we keep it as text.
    assert split_prompt("sunset: golden hour") == ("sunset: golden hour", 1.0, -math.inf)
    assert split_prompt("time: 5 o'clock:2") == ("time: 5 o'clock", 2.0, -math.inf)
    with pytest.raises(ValueError):
        reference_split("sunset: golden hour")


def test_parts_weights_stops_and_image_ids():
    parts = parse_prompts("a red circle:2:0.5 | blurry:-0.5 | #42:0.3 | sunset: golden hour")
    assert parts == [
        WeightedPrompt("a red circle", 2.0, 0.5),
        WeightedPrompt("blurry", -0.5, -math.inf),
        WeightedPrompt("#42", 0.3, -math.inf),
        WeightedPrompt("sunset: golden hour", 1.0, -math.inf),
    ]
    assert [p.image_id for p in parts] == [None, None, 42, None]
    # The default spelled out is the default (it used to be read as weight -inf: a black image).
    assert parse_prompts("text:1:-inf") == [WeightedPrompt("text", 1.0, -math.inf)]


@pytest.mark.parametrize(
    ("prompt", "says"),
    [
        ("text:nan", "finite"), ("text:inf", "finite"), ("text:-inf", "finite"), ("text:1e400", "finite"),
        ("text:1:nan", "stop"), ("text:1:inf", "stop"), ("text:1:+inf", "stop"), ("text:1e9", "out of range"),
        ("text:-101", "out of range"), ("text:1:5", "out of range"), ("text:1:-7", "out of range"),
        (":2", "no text"), ("a:-1", "no positive weight"), ("", "no text"), (" | ", "no text"),
        ("x" * (MAX_PROMPT_CHARS + 1), "characters"), ("|".join(["a"] * (MAX_PARTS + 1)), "parts"),
        ("a\x00b", "NUL"), ("a \ud800", "surrogate"),
    ],
)  # fmt: skip
def test_absurd_prompts_are_refused_with_a_sentence(prompt, says):
    with pytest.raises(PromptError, match=says):
        parse_prompts(prompt)


def unit(*rows) -> torch.Tensor:
    t = torch.tensor(rows, dtype=torch.float64)
    return t / t.norm(dim=-1, keepdim=True)


def test_prompt_loss_is_the_weighted_mean_distance():
    embeds = unit([1.0, 0.2, 0.0], [0.3, 1.0, 0.1]).requires_grad_(True)
    target = unit([0.0, 1.0, 0.0])
    for weight in (2.0, -0.5):
        loss = prompt_loss(embeds, target, weight, -math.inf)
        oracle = weight * spherical_distance(embeds[:, None], target[None]).mean()
        assert torch.allclose(loss, oracle)
        (g,) = torch.autograd.grad(loss, embeds)
        (g_oracle,) = torch.autograd.grad(oracle, embeds)
        assert torch.allclose(g, g_oracle) and g.abs().sum() > 0


def test_a_stop_cuts_the_gradient_below_it_but_not_the_value():
    embeds = unit([1.0, 0.1, 0.0], [0.0, 1.0, 0.05]).requires_grad_(True)
    target = unit([0.0, 1.0, 0.0])
    d = spherical_distance(embeds[:, None], target[None]).detach().flatten()  # one far, one near
    assert d[0] > 1.0 > d[1]
    loss = prompt_loss(embeds, target, 1.0, 1.0)  # stop between the two distances
    assert torch.allclose(loss, d.mean())
    (g,) = torch.autograd.grad(loss, embeds)
    assert g[0].abs().sum() > 0 and torch.equal(g[1], torch.zeros(3, dtype=g.dtype))  # the near one is done
    # A negative weight compares -distance with the stop: it pushes away only while closer than -stop.
    loss = prompt_loss(embeds, target, -1.0, -1.0)
    (g,) = torch.autograd.grad(loss, embeds)
    assert torch.equal(g[0], torch.zeros(3, dtype=g.dtype)) and g[1].abs().sum() > 0
