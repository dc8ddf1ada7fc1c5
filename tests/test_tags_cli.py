"""`photoseek classify` and `photoseek tags ...` through click's runner (in process: one torch load)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from indexer.toyworld import COLOURS, SHAPES, Spec, render
from searchd.cli import build_cli
from tests.test_tags import ids_by_path, index_with_tags, states

PAIRS = ",".join(f"{c} {s}" for c in COLOURS for s in SHAPES)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_cli(), list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    "spec", [Spec("green", "triangle", "white background"), Spec("purple", "square", "blue background")]
)
def test_classify_prints_probabilities(tmp_path, spec):
    picture = tmp_path / "photo.jpg"
    render(spec, (320, 240), np.random.default_rng(7)).save(picture)
    code, out = run(
        "--data-dir",
        str(tmp_path / "d"),
        "--model",
        "toy",
        "classify",
        str(picture),
        "--labels",
        PAIRS,
        "--json",
    )
    assert code == 0, out
    doc = json.loads(out)
    assert doc["labels"][0]["label"] == f"{spec.colour} {spec.shape}"
    assert sum(r["probability"] for r in doc["labels"]) == pytest.approx(1.0, abs=1e-3)

    code, out = run(
        "--data-dir",
        str(tmp_path / "d"),
        "--model",
        "toy",
        "classify",
        str(picture),
        "--labels",
        "circle, square,triangle,star",
    )
    lines = out.splitlines()
    assert (
        code == 0
        and len(lines) == 4
        and lines[0].endswith(f"  {spec.shape}")
        and lines[0].strip()[0].isdigit()
    )


def test_classify_explains_bad_input(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"no picture here")
    code, out = run("--model", "toy", "classify", str(bad), "--labels", "cat,dog")
    assert code == 2 and "broken.jpg" in out
    code, out = run("--model", "toy", "classify", str(bad), "--labels", "cat")
    assert code == 2 and "at least two labels" in out
    code, out = run("--model", "toy", "classify", str(tmp_path / "nope.jpg"), "--labels", "cat,dog")
    assert code == 2 and "neither an image file" in out


def test_tags_commands(tmp_path, toy_encoder):
    from indexer.toyworld import build_library

    root = tmp_path / "photos"
    build_library(root, 24, seed=8)
    data = tmp_path / "data"
    _, catalog = index_with_tags(data, root, toy_encoder)
    image_id = min(ids_by_path(catalog).values())
    base = ("--data-dir", str(data))

    code, out = run(*base, "tags", "suggest", str(image_id), "--json")
    assert code == 0, out
    ranked = json.loads(out)["tags"]
    best = ranked[0]["name"]
    assert ranked[0]["suggested"] and ranked[0]["score"] >= ranked[-1]["score"]

    assert run(*base, "tags", "accept", str(image_id), best) == (0, f"#{image_id}: accept {best!r}\n")
    assert run(*base, "tags", "reject", str(image_id), ranked[1]["name"])[0] == 0
    assert run(*base, "tags", "add", str(image_id), "new", "york")[0] == 0  # no quotes needed
    now = states(catalog, image_id)
    assert (now[best], now[ranked[1]["name"]], now["new york"]) == ("accepted", "rejected", "accepted")

    code, out = run(*base, "tags", "list", "--json")
    counts = {row["name"]: row for row in json.loads(out)}
    assert code == 0 and counts["new york"]["accepted"] == 1 and counts[best]["accepted"] >= 1

    code, out = run(*base, "tags", "recompute")
    assert code == 0 and "for 24 photos" in out
    assert states(catalog, image_id)[ranked[1]["name"]] == "rejected"

    code, out = run(*base, "tags", "accept", "999999", "dog")
    assert code == 2 and "no image #999999" in out
