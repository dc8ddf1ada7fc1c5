"""`photoseek index --ray`: reading and embedding on a real Ray cluster (a head and a second node started
on this machine by the tests), checked against a plain index of the same library (docs/distributed.md).

Slow (a cluster starts in seconds, each actor loads the toy CLIP), but part of `make test`."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from indexer.catalog.embeddings import from_blobs
from indexer.catalog.schema import OK, Embedding, Image, ImageTag
from indexer.distributed import RayOptions
from indexer.errors import ModelMismatch
from tests.conftest import open_library
from tests.ray_support import LocalCluster
from tests.test_bad_files import make_bad_tree
from tests.test_models import REPO, photoseek
from tests.watch_support import wait_for

pytestmark = pytest.mark.slow

# The ONNX runtime (the CPU default) on the driver and on the workers: actors then load the toy CLIP
# in a fraction of a second, without torch. Small batches: a run spans many batches on both nodes.
RAY_SETTINGS = dict(runtime="onnx", batch_size=6, workers=0)
ROW_COLUMNS = ("size", "mtime", "content_hash", "format", "width", "height", "taken_at", "camera")
ROW_COLUMNS += ("caption", "generated", "status", "error", "note")


@pytest.fixture(scope="module")
def cluster():
    c = LocalCluster(cpus_per_node=1).start(nodes=2)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, library) -> Path:
    """Toy photos (JPEG and PNG), a duplicate, and one of every kind of bad file."""
    root = tmp_path_factory.mktemp("mixed")
    make_bad_tree(root, library)
    more = sorted(library.rglob("*.jpg"))[12:40] + sorted(library.rglob("*.png"))[:8]
    for i, src in enumerate(more):
        shutil.copy(src, root / f"more_{i:02d}{src.suffix}")
    shutil.copy(root / "good_0.jpg", root / "same_as_good_0.jpg")
    return root


def photo_files(root: Path) -> int:
    return sum(1 for p in root.iterdir() if p.suffix in (".jpg", ".png"))


def catalog_state(catalog) -> tuple[dict, dict, dict]:
    """path -> row values; content hash -> vector; path -> tag names (suggested with the embedding)."""
    with catalog.session() as s:
        rows = {i.path: tuple(getattr(i, c) for c in ROW_COLUMNS) for i in s.scalars(select(Image))}
        embs = s.scalars(select(Embedding)).all()
        vectors = dict(zip([e.content_hash for e in embs], from_blobs([e.vector for e in embs]), strict=True))
        tags: dict[str, set] = {}
        for path, tag_id in s.execute(select(Image.path, ImageTag.tag_id).join(ImageTag)):
            tags.setdefault(path, set()).add(tag_id)
    return rows, vectors, tags


def check_indexed_once(catalog, root: Path) -> int:
    """Every file has one row, every searchable row's content one embedding; returns the rows."""
    with catalog.session() as s:
        paths = s.scalars(select(Image.path)).all()
        hashes = s.scalars(select(Embedding.content_hash)).all()
        ok = s.scalars(select(Image.content_hash).where(Image.status == OK)).all()
    assert sorted(paths) == sorted(str(p) for p in root.iterdir())
    assert len(hashes) == len(set(hashes)) and set(ok) == set(hashes)
    return len(paths)


@pytest.fixture(scope="module")
def plain(tmp_path_factory, mixed):
    """The oracle: a plain index of `mixed` (this process reads and embeds), its summary and state."""
    with open_library(tmp_path_factory.mktemp("plain"), **RAY_SETTINGS) as lib:
        summary = lib.writer(images_only=True).index_roots([mixed])
        return summary, catalog_state(lib.catalog)


def assert_same_as(plain, summary, state) -> None:
    (want_summary, (want_rows, want_vectors, want_tags)), (rows, vectors, tags) = plain, state
    assert summary.text() == want_summary.text()
    assert rows == want_rows
    assert set(vectors) == set(want_vectors)
    cosines = [float(np.dot(vectors[h], want_vectors[h])) for h in want_vectors]
    assert min(cosines) >= 0.9999, min(cosines)
    assert tags == want_tags  # the commit's hooks ran on the driver, with the cluster's vectors


def test_cluster_index_equals_plain_index(tmp_path, cluster, mixed, plain):
    with open_library(tmp_path / "data", **RAY_SETTINGS) as lib:
        writer = lib.writer(images_only=True, ray=RayOptions.parse(cluster.address))
        stage = writer.cluster
        summary = writer.index_roots([mixed])
        assert_same_as(plain, summary, catalog_state(lib.catalog))
        check_indexed_once(lib.catalog, mixed)
    assert summary.new > 0 and summary.embedded == summary.new - 1  # one photo is a duplicate
    assert len(stage.rates.photos) == 2, stage.rates.photos  # both nodes read and embedded
    assert sum(stage.rates.photos.values()) == summary.new + sum(summary.failed.values()) - len(
        [f for f in mixed.iterdir() if f.is_symlink()]  # unreadable at the plan: never sent
    )
    assert writer.cluster is None and not stage.slots  # the cluster is let go at the end


def test_killed_worker_is_retried_and_every_photo_indexed_once(tmp_path, cluster, mixed, plain):
    victim: dict = {}

    def kill_a_busy_actor_once() -> None:  # the writer calls this for each photo that comes back
        if victim:
            return
        busy = [s for s in stage.slots if s.out > 0]
        assert busy, "nothing in flight when the worker was to be killed"
        victim.update(slot=busy[0], pid=busy[0].pid)
        os.kill(busy[0].pid, signal.SIGKILL)

    with open_library(tmp_path / "data", **RAY_SETTINGS) as lib:
        ray = RayOptions.parse(cluster.address)
        writer = lib.writer(images_only=True, between_photos=kill_a_busy_actor_once, ray=ray)
        stage = writer.cluster
        summary = writer.index_roots([mixed])
        assert_same_as(plain, summary, catalog_state(lib.catalog))
        check_indexed_once(lib.catalog, mixed)
    assert victim, "the run ended before a worker could be killed"
    assert victim["slot"].pid != victim["pid"]  # Ray restarted the actor and it embedded the rest


def test_a_node_that_dies_mid_run_has_its_work_done_elsewhere(tmp_path, cluster, mixed, plain):
    """A third node joins and gets its share of the first batches, then hangs (every process of it
    stopped) and dies (killed) once the other nodes' first batch is in: Ray runs its read tasks again
    elsewhere (their pixels died with it) and restarts its actor on a node that is left."""
    import ray

    node = cluster.add_node("node3")
    killed: list[bool] = []

    def kill_the_node_once() -> None:  # the writer calls this for each photo that comes back
        if not killed:
            killed.append(True)
            cluster.kill_node(node)

    try:
        with open_library(tmp_path / "data", **RAY_SETTINGS) as lib:
            ray_options = RayOptions.parse(cluster.address)
            writer = lib.writer(images_only=True, between_photos=kill_the_node_once, ray=ray_options)
            stage = writer.cluster
            stage.start(lib.encoder().identity)
            ports = {n["NodeManagerPort"]: n["NodeID"] for n in ray.nodes() if n["Alive"]}
            node_id = ports[node.node_manager_port]
            # Its actor gets one of the first batches (each does), which it cannot finish.
            victim = next(s for s in stage.slots if s.node_id == node_id)
            assert len(stage.slots) == 3
            cluster.freeze_node(node)  # its actor included: its first batch cannot come back from it
            summary = writer.index_roots([mixed])
            assert_same_as(plain, summary, catalog_state(lib.catalog))
            check_indexed_once(lib.catalog, mixed)
    finally:
        if node in cluster.nodes:
            cluster.kill_node(node)
    assert killed, "the run ended without a batch"
    assert victim.node_id != node_id  # its actor came back elsewhere and embedded its batches


def test_killed_driver_loses_what_was_in_flight_and_resumes(tmp_path, cluster, library):
    root, data = tmp_path / "photos", tmp_path / "data"
    root.mkdir()
    for i, src in enumerate(sorted(library.rglob("*.jpg"))[:120]):
        shutil.copy(src, root / f"p{i:03d}.jpg")
    args = ["--data-dir", str(data), "--model", "toy", "index", str(root), "--ray", cluster.address]
    args += ["--batch-size", "4", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    driver = subprocess.Popen([sys.executable, "-m", "searchd.cli", *args], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_for(lambda: committed(data) > 0 or driver.poll() is not None, 180, "a first committed batch")
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.kill()
        out, err = driver.communicate(timeout=60)
    assert driver.returncode == -signal.SIGKILL, f"the driver ended before it was killed: {out}{err}"
    before = committed(data)
    assert 0 < before < 120  # killed mid-run: some batches committed, not all

    proc = photoseek(*args, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # The next run trusts what was committed (unchanged, not embedded again) and does the rest.
    first = proc.stdout.splitlines()[0]
    assert first == f"{120 - before} new, 0 changed, {before} unchanged, 0 moved, 0 removed, 0 failed " \
        f"({120 - before} embedded)", proc.stdout  # fmt: skip
    assert f"on the Ray cluster: {120 - before} photos read and embedded by " in proc.stdout, proc.stdout
    assert "node(s), 2 embedding actor(s)" in proc.stdout  # one per node: both nodes have a CPU
    from indexer.catalog import open_catalog

    catalog = open_catalog(data)
    try:
        assert check_indexed_once(catalog, root) == 120
    finally:
        catalog.close()


def committed(data: Path) -> int:
    """Searchable rows in a catalog that another process is writing (0 before it exists)."""
    path = data / "catalog.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
        try:
            return db.execute("SELECT count(*) FROM images WHERE status = 'ok'").fetchone()[0]
        except sqlite3.OperationalError:  # not migrated yet
            return 0


def test_a_worker_with_another_model_is_refused(tmp_path, cluster, mixed):
    """The weights file the driver loaded is replaced before the workers load theirs (as when a node
    has other weights at the same path): the workers' vectors are not comparable, and none is kept."""
    import torch

    from indexer.toyclip import CHECKPOINT_PATH, MODEL_NAME

    weights = tmp_path / "weights.pt"
    shutil.copy(CHECKPOINT_PATH, weights)
    spec = f"{MODEL_NAME}:{weights}"
    with open_library(tmp_path / "data", model=spec, runtime="torch", batch_size=6, workers=0) as lib:
        driver_identity = lib.encoder().identity  # the driver loads the weights now
        state = torch.load(weights, map_location="cpu")
        torch.save({k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}, weights)
        writer = lib.writer(images_only=True, ray=RayOptions.parse(cluster.address))
        with pytest.raises(ModelMismatch) as refused:
            writer.index_roots([mixed])
        with lib.catalog.session() as s:
            assert s.scalars(select(Embedding)).first() is None
            assert s.scalars(select(Image).where(Image.status == OK)).first() is None
    assert "the Ray worker" in str(refused.value) and driver_identity.file_hash[:12] in str(refused.value)
    assert "Install the same photoseek and model weights on every node" in str(refused.value)


def test_path_map_lets_workers_read_from_their_own_mount(tmp_path, cluster, mixed, plain):
    """Workers read the photos themselves, at the mapped path (here: a link to the same folder), and
    the catalog keeps the driver's paths: the same rows and vectors as when the bytes are shipped."""
    mount = tmp_path / "mount"
    mount.symlink_to(mixed)
    with open_library(tmp_path / "data", **RAY_SETTINGS) as lib:
        ray = RayOptions.parse(cluster.address, [f"{mixed}={mount}"])
        writer = lib.writer(images_only=True, ray=ray)
        stage = writer.cluster
        summary = writer.index_roots([mixed])
        assert_same_as(plain, summary, catalog_state(lib.catalog))
    assert stage.rates.shipped == 0  # no photo's bytes left this machine


def test_ray_options_from_the_command_line():
    opts = RayOptions.parse("10.0.0.2:6379", ["/volume1/photos=/mnt/nas", "/volume1/photos/raw/=/mnt/raw"])
    assert opts.worker_path("/volume1/photos/raw/a.dng") == "/mnt/raw/a.dng"  # the longest prefix wins
    assert opts.worker_path("/volume1/photos/2020/b.jpg") == "/mnt/nas/2020/b.jpg"
    assert opts.worker_path("/volume1/photoshoot/c.jpg") is None  # not under it: the bytes are shipped
    proc = photoseek("index", "/tmp", "--ray-path-map", "nonsense")
    assert proc.returncode == 2 and "--ray-path-map and --ray-actors go with --ray ADDRESS" in proc.stderr
    proc = photoseek("index", "/tmp", "--ray", "127.0.0.1:6379", "--ray-path-map", "nonsense")
    assert proc.returncode == 2 and "DRIVER_PREFIX=WORKER_PREFIX" in proc.stderr


def test_watch_first_scan_and_reembed_on_the_cluster(tmp_path, cluster, library):
    """`watch --ray` does its first scan on the cluster; `reembed --ray` embeds every content there (here
    with the toy's weights from another file: another model to the catalog, the same vectors)."""
    from indexer.catalog import open_catalog
    from indexer.toyclip import CHECKPOINT_PATH, MODEL_NAME

    root, data = tmp_path / "photos", tmp_path / "data"
    root.mkdir()
    data.mkdir()
    # fp32: int8's dynamic quantisation scales activations per batch, so the same photo embedded in
    # other company (reembed plans its own batches) moves by ~2e-4 in cosine; fp32 does not.
    (data / "photoseek.toml").write_text('onnx_precision = "fp32"\n')
    for i, src in enumerate(sorted(library.rglob("*.jpg"))[:30]):
        shutil.copy(src, root / f"p{i:02d}.jpg")
    ray = ["--ray", cluster.address]
    proc = photoseek("--data-dir", str(data), "--model", "toy", "watch", "--scan-only", "--batch-size", "6",
                     *ray, str(root), timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    catalog = open_catalog(data)
    try:
        assert check_indexed_once(catalog, root) == 30
        toy = catalog.active_model()
        weights = tmp_path / "toy-copy.pt"
        shutil.copy(CHECKPOINT_PATH, weights)
        proc = photoseek("--data-dir", str(data), "reembed", "--model", f"{MODEL_NAME}:{weights}", *ray,
                         timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "re-embedded 30 images" in proc.stdout and "on the Ray cluster: 30 photos" in proc.stdout
        copy = catalog.active_model()
        assert copy != toy and copy.pretrained == "file"
        with catalog.session() as s:
            embs = s.scalars(select(Embedding)).all()
        by_model: dict[int, dict] = {}
        for e in embs:
            by_model.setdefault(e.model_id, {})[e.content_hash] = from_blobs([e.vector])[0]
        old, new = (by_model[catalog.model_id(m)] for m in (toy, copy))
        assert set(old) == set(new) and len(new) == 30
        assert min(float(np.dot(old[h], new[h])) for h in new) >= 0.9999
    finally:
        catalog.close()
