"""The CPU runtime (indexer/towers.py on ONNX Runtime, int8 by default) against the torch reference,
through the Library as the commands use it: the same photos come back for the same queries, and a
process that indexes and searches with it never imports torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from indexer.query import parse_query
from tests.conftest import LIBRARY_SIZE, index_library, read_manifest
from tests.test_search_quality import QUERIES

OVERLAP_AT_10 = {"fp32": 0.99, "int8": 0.9}  # of the torch library's top 10, over QUERIES


@pytest.fixture(scope="module", params=["int8", "fp32"])
def onnx_library(request, tmp_path_factory, library):
    indexed, summary = index_library(
        tmp_path_factory.mktemp(f"onnx-{request.param}"), [library], None, runtime="onnx",
        onnx_precision=request.param,
    )  # fmt: skip
    assert summary.new == LIBRARY_SIZE, summary.text()
    yield request.param, indexed
    indexed.close()


def test_the_library_runs_onnx_with_the_same_identity(onnx_library, indexed_library):
    _, onnx = onnx_library
    assert type(onnx.encoder()).__name__ == "OnnxClip"
    assert onnx.catalog.active_model() == indexed_library.catalog.active_model()  # one embedding space


def test_onnx_and_torch_libraries_answer_alike(onnx_library, indexed_library, library):
    precision, onnx = onnx_library
    truth = read_manifest(library)
    overlaps, right = [], 0
    for colour, shape in QUERIES:
        query = parse_query(f"a {colour} {shape}")
        mine = onnx.searcher().search(query, limit=10)
        reference = indexed_library.searcher().search(query, limit=10)
        overlaps.append(len({h.path for h in mine} & {h.path for h in reference}) / 10)
        right += sum((truth[h.path]["colour"], truth[h.path]["shape"]) == (colour, shape) for h in mine)
    assert np.mean(overlaps) >= OVERLAP_AT_10[precision], overlaps
    assert right >= 0.85 * 10 * len(QUERIES)  # and the answers are right, not merely alike


def test_stored_vectors_are_close_to_torchs(onnx_library, indexed_library):
    precision, onnx = onnx_library
    model_id = onnx.catalog.model_id(onnx.catalog.active_model(), create=False)
    ids, mine = onnx.catalog.searchable_vectors(model_id)
    ref_ids, ref = indexed_library.catalog.searchable_vectors(model_id)
    by_path = {p: v for p, v in zip(_paths(indexed_library, ref_ids), ref, strict=True)}
    cos = [float(v @ by_path[p]) for p, v in zip(_paths(onnx, ids), mine, strict=True)]
    assert min(cos) > (0.9999 if precision == "fp32" else 0.995), min(cos)


def _paths(library, ids) -> list[str]:
    rows = library.catalog.images_by_ids(ids.tolist())
    return [rows[i].path for i in ids.tolist()]


def test_indexing_and_searching_on_onnx_import_no_torch(tmp_path, library, onnx_library):
    """The export exists (the fixture made it); a fresh process then indexes and searches without torch."""
    photos = sorted(p for p in library.rglob("*.jpg"))[:20]
    code = f"""
import sys
from pathlib import Path
from indexer.library import Library
from indexer.query import parse_query
from indexer.settings import Settings
settings = Settings(data_dir=Path({str(tmp_path / "data")!r}), model="toy", runtime="onnx",
                    onnx_precision={onnx_library[0]!r}, workers=0)
with Library.open(settings) as lib, lib.writer_lock():
    root = Path({str(tmp_path / "photos")!r})
    root.mkdir()
    for i, p in enumerate({[str(p) for p in photos]!r}):
        (root / f"{{i}}.jpg").write_bytes(Path(p).read_bytes())
    summary = lib.writer(images_only=True).index_roots([root])
    hits = lib.searcher().search(parse_query("a red circle"), limit=3)
print(summary.new, len(hits), sorted({{"torch", "open_clip"}} & set(sys.modules)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().split(maxsplit=2) == ["20", "3", "[]"], out.stdout + out.stderr[-2000:]


def test_a_tower_loaded_from_its_kept_optimised_graph_answers_as_the_first_load(onnx_library, library):
    """The first load keeps onnxruntime's optimised graph beside the export (*.opt.onnx); later loads
    read that one instead of optimising again, and must answer the same."""
    from PIL import Image

    from indexer.onnx_towers import OnnxImageTower, OnnxTextTower
    from indexer.preprocess import fit_square

    precision, onnx = onnx_library
    folder = onnx.encoder().folder
    for kept in folder.glob("*.opt.onnx"):
        kept.unlink()
    texts = ["a red circle", "a blue square on a grey background"]
    first = OnnxTextTower(folder, 1, precision).encode_texts(texts)
    assert list(folder.glob("text*.opt.onnx"))
    again = OnnxTextTower(folder, 1, precision).encode_texts(texts)
    assert np.allclose(first, again, atol=1e-6)
    with Image.open(sorted(library.rglob("*.jpg"))[0]) as im:
        pixels = fit_square(im.convert("RGB"), onnx.encoder().image_size)[None]
    first = OnnxImageTower(folder, 1, precision).encode_pixels(pixels)
    again = OnnxImageTower(folder, 1, precision).encode_pixels(pixels)
    assert np.allclose(first, again, atol=1e-6)
