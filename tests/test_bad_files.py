"""Bad files are recorded with a reason and skipped; the good files beside them are all indexed."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from indexer.catalog import open_catalog
from indexer.catalog.schema import FAILED, OK, Image
from indexer.decode import read_photo
from tests.conftest import index_library

GOOD = 12


def _jpeg_bytes(colour=(200, 30, 30), size=(320, 240)) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", size, colour).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _png_bytes(size=(64, 64)) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", size, (20, 200, 20)).save(buf, "PNG")
    return buf.getvalue()


def _declared_huge_png(width: int, height: int) -> bytes:
    """A small, valid-looking PNG whose header claims width x height pixels."""
    data = bytearray(_png_bytes())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(data)


def make_bad_tree(root: Path, library: Path) -> dict[str, str]:
    """Good toy images plus one of every kind of bad file; returns bad name -> expected reason."""
    good = sorted(library.rglob("*.jpg"))[:GOOD]
    for i, src in enumerate(good):
        shutil.copy(src, root / f"good_{i}.jpg")
    (root / "zero.jpg").write_bytes(b"")
    (root / "truncated.jpg").write_bytes(_jpeg_bytes()[:600])
    (root / "text.jpg").write_text("this is not a photo\n")
    (root / "bomb.png").write_bytes(_declared_huge_png(30000, 30000))
    os.symlink("loop.jpg", root / "loop.jpg")
    os.symlink("nowhere.jpg", root / "dangling.jpg")
    (root / "png_named.jpg").write_bytes(_png_bytes())  # a real image: indexed, with a note
    expected = {
        "zero.jpg": "empty file (0 bytes)",
        "truncated.jpg": "truncated or corrupt image",
        "text.jpg": "not an image (unrecognised format)",
        "bomb.png": "decompression bomb guard: 30000x30000",
        "loop.jpg": "symbolic link loop",
        "dangling.jpg": "broken symbolic link",
    }
    if (
        os.geteuid() != 0
    ):  # root reads everything: test_unreadable_file_reason covers it by dropping to nobody
        (root / "locked.jpg").write_bytes(_jpeg_bytes())
        (root / "locked.jpg").chmod(0)
        expected["locked.jpg"] = "unreadable: permission denied"
    return expected


def _check(catalog_dir: Path, root: Path, expected: dict[str, str]) -> None:
    catalog = open_catalog(catalog_dir)
    with catalog.session() as s:
        rows = {Path(r.path).name: r for r in s.scalars(select(Image))}
    for name, reason in expected.items():
        assert rows[name].status == FAILED, f"{name}: {rows[name].status}"
        assert reason in rows[name].error, f"{name}: {rows[name].error!r}"
    goods = [r for n, r in rows.items() if n.startswith("good_")]
    assert len(goods) == GOOD and all(r.status == OK for r in goods)
    png = rows["png_named.jpg"]
    assert png.status == OK and png.note == "named .jpg but the content is PNG"


def test_bad_files_recorded_good_files_indexed(tmp_path, library, toy_encoder, caplog):
    root = tmp_path / "photos"
    root.mkdir()
    expected = make_bad_tree(root, library)
    indexed_lib, summary = index_library(tmp_path / "data", [root], toy_encoder)
    _check(tmp_path / "data", root, expected)
    assert sum(summary.failed.values()) == len(expected)
    assert "skipping" in caplog.text and "zero.jpg" in caplog.text


def test_bad_files_via_cli(tmp_path, library):
    """The real CLI in a subprocess: summary, log lines and catalog rows."""
    root, data = tmp_path / "photos", tmp_path / "data"
    root.mkdir()
    expected = make_bad_tree(root, library)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    cmd = [
        sys.executable,
        "-m",
        "searchd.cli",
        "--data-dir",
        str(data),
        "--model",
        "toy",
        "index",
        str(root),
        "--workers",
        "0",
        "--no-progress",
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=300, cwd=Path(__file__).parent.parent
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{GOOD + 1} new" in proc.stdout  # the good ones and the PNG named .jpg
    assert f"{len(expected)} failed" in proc.stdout
    assert "failed: 1 x symbolic link loop" in proc.stdout
    assert "skipping" in proc.stderr and "text.jpg: not an image" in proc.stderr
    _check(data, root, expected)


def test_unreadable_file_reason():
    """chmod 000 as a user the file does not belong to (root drops to 'nobody' in a forked child)."""
    work = Path(tempfile.mkdtemp(prefix="photoseek-locked-"))
    try:
        work.chmod(0o755)
        locked = work / "locked.jpg"
        locked.write_bytes(_jpeg_bytes())
        locked.chmod(0)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: no torch here, only os and Pillow
            try:
                os.close(read_end)
                if os.geteuid() == 0:
                    os.setgid(65534)
                    os.setuid(65534)
                os.write(write_end, str(read_photo(str(locked), 64).error).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as f:
            reason = f.read()
        os.waitpid(pid, 0)
        assert reason == "unreadable: permission denied"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_search_json_never_lists_failed_files(tmp_path, library, toy_encoder):
    root = tmp_path / "photos"
    root.mkdir()
    make_bad_tree(root, library)
    indexed_lib, _ = index_library(tmp_path / "data", [root], toy_encoder)
    from indexer.query import parse_query

    hits = indexed_lib.searcher().search(parse_query("a photo"), limit=100)
    names = {Path(h.path).name for h in hits}
    assert len(hits) == GOOD + 1
    assert not names & {"zero.jpg", "truncated.jpg", "text.jpg", "bomb.png", "locked.jpg"}
    json.dumps([h.as_dict() for h in hits])  # serialisable as the CLI's --json prints it


def test_missing_decoder_failure_is_retried_once_the_decoder_is_there(tmp_path, toy_encoder):
    """A HEIC recorded as 'no HEIF decoder' is read again on the next pass when pillow-heif is present."""
    pillow_heif = pytest.importorskip("pillow_heif")
    from indexer.formats import NO_HEIF

    pillow_heif.register_heif_opener()
    root = tmp_path / "photos"
    root.mkdir()
    PILImage.new("RGB", (64, 48), (250, 130, 20)).save(root / "IMG_1.HEIC", "HEIF")
    indexed_lib, first = index_library(tmp_path / "data", [root], toy_encoder)
    catalog = indexed_lib.catalog
    assert first.new == 1
    with catalog.session() as s:  # as if it had been indexed on a machine without pillow-heif
        row = s.scalars(select(Image)).one()
        row.status, row.error = FAILED, NO_HEIF
    indexed_lib, again = index_library(tmp_path / "data", [root], toy_encoder)
    assert again.unchanged == 0
    with catalog.session() as s:
        assert s.scalars(select(Image)).one().status == OK
