"""The watcher's parts on their own: network-share detection, settling, the model cache, status."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from indexer.models import ModelCache
from indexer.watch.mounts import needs_polling, read_mounts
from indexer.watch.settle import SettleTracker
from tests.conftest import make_settings
from tests.watch_support import WATCH_OVERRIDES, RunningWatcher, library_files, ok_rows, wait_for

PROC_MOUNTS = """\
/dev/sda1 / ext4 rw,relatime 0 0
proc /proc proc rw 0 0
//nas/photos /mnt/nas cifs rw,vers=3.0 0 0
nas:/volume1/photo /mnt/nfs nfs4 rw 0 0
me@host:/pics /home/me/remote\\040pics fuse.sshfs rw 0 0
/dev/sdb1 /mnt/nas/local-cache ext4 rw 0 0
tank/photos /tank/photos zfs rw 0 0
"""

# watchdog warns (from its observer thread) when inotify hands a reused watch descriptor to a new
# folder; harmless, but pytest's "warnings are errors" would kill that thread.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")


def test_network_shares_are_polled_local_disks_are_not():
    mounts = read_mounts(PROC_MOUNTS)
    assert "cifs" in (needs_polling("/mnt/nas/2024/a.jpg", mounts) or "")
    assert "nfs4" in (needs_polling("/mnt/nfs", mounts) or "")
    assert "fuse.sshfs" in (needs_polling("/home/me/remote pics/x", mounts) or "")  # \040 is a space
    assert needs_polling("/mnt/nas/local-cache/x", mounts) is None  # the longest mount point wins
    assert needs_polling("/mnt/nasty", mounts) is None  # a prefix of the name is not a parent folder
    assert needs_polling("/tank/photos/2020", mounts) is None
    assert needs_polling("/home/me", mounts) is None


def test_a_growing_file_is_not_ready_until_it_settles(tmp_path):
    now = [0.0]
    tracker = SettleTracker(2.0, clock=lambda: now[0])
    f = tmp_path / "a.jpg"
    f.write_bytes(b"x" * 10)
    tracker.touch(str(f), "root")
    now[0] = 1.0
    assert tracker.take_ready(10) == ([], [])  # not quiet for long enough
    now[0] = 2.0
    with open(f, "ab") as out:  # it grew (no event seen, e.g. a polled share)
        out.write(b"y")
    assert tracker.take_ready(10) == ([], [])
    now[0] = 4.0
    assert tracker.take_ready(10) == ([("root", str(f))], [])
    # renamed while waiting: it waits under its new name; vanished while waiting: reported
    tracker.touch(str(f), "root")
    tracker.rename(str(f), str(tmp_path / "b.jpg"), is_dir=False)
    f.rename(tmp_path / "b.jpg")
    tracker.touch(str(tmp_path / "c.jpg"), "root")
    now[0] = 7.0
    ready, vanished = tracker.take_ready(10)
    assert ready == [("root", str(tmp_path / "b.jpg"))] and vanished == [("root", str(tmp_path / "c.jpg"))]
    assert len(tracker) == 0


def test_model_cache_unloads_when_idle_and_loads_again(toy_encoder):
    now = [0.0]
    loads, unloaded = [], []

    def loader():
        loads.append(1)
        return toy_encoder

    cache = ModelCache(idle_unload_s=60, clock=lambda: now[0])
    get = lambda: cache.get("clip", loader, on_unload=unloaded.append)  # noqa: E731
    assert get() is toy_encoder and get() is toy_encoder and len(loads) == 1
    now[0] = 59.0
    assert cache.unload_idle() == [] and cache.loaded("clip")
    now[0] = 120.0
    assert cache.unload_idle() == ["clip"] and not cache.loaded("clip") and unloaded == [toy_encoder]
    assert get() is toy_encoder and len(loads) == 2 and cache.loads["clip"] == 2
    kept = ModelCache(idle_unload_s=0, clock=lambda: now[0])
    kept.get("clip", loader)
    now[0] = 1e9
    assert kept.unload_idle() == [] and kept.loaded("clip")  # 0: keep it for good


def test_watcher_lets_the_model_go_when_idle(tmp_path, library):
    root = (tmp_path / "photos").resolve()
    root.mkdir()
    files = library_files(library)
    shutil.copy(files[0], root / "a.jpg")
    settings = make_settings(tmp_path / "data", model_idle_unload_s=0.5, **WATCH_OVERRIDES)
    with RunningWatcher(settings, [root]) as rw:  # the library loads the toy CLIP itself
        models, key = rw.library.models, rw.library.clip_key
        wait_for(lambda: models.loads[key] >= 1 and not models.loaded(key), 30, "the idle model to go")
        shutil.copy(files[1], root / "b.jpg")
        wait_for(lambda: str(root / "b.jpg") in ok_rows(rw.catalog), 30, "the next photo")
        assert models.loads[key] >= 2  # loaded again for b.jpg


def test_status_shows_roots_counts_queue_and_failures(tmp_path, library, toy_encoder):
    from searchd.cli import build_cli

    root = (tmp_path / "photos").resolve()
    root.mkdir()
    for src in library_files(library)[:3]:
        shutil.copy(src, root / src.name)
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    settings = make_settings(tmp_path / "data", **WATCH_OVERRIDES)
    cli = build_cli()
    runner = CliRunner()
    args = ["--data-dir", str(settings.data_dir), "status"]
    with RunningWatcher(settings, [root], toy_encoder):
        wait_for(lambda: settings.layout.watch_status.exists(), 10, "the status file")
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert f"{root}: online, native; 3 ok, 1 failed" in result.output
        assert "queue: 0 events" in result.output
        assert "not an image" in result.output  # failures by reason
        doc = json.loads(runner.invoke(cli, [*args, "--json"]).output)
        assert doc["watcher"]["roots"][str(root)]["observer"] == "native"
        assert doc["counts"] == {"ok": 3, "failed": 1, "deleted": 0}
    result = runner.invoke(cli, args)
    assert "watcher: not running" in result.output
    assert not settings.layout.watch_status.exists()


def test_no_vector_index_in_the_watcher_when_saving_is_off(tmp_path, library, toy_encoder):
    root = (tmp_path / "photos").resolve()
    root.mkdir()
    shutil.copy(library_files(library)[0], root / "a.jpg")
    settings = make_settings(tmp_path / "data", **{**WATCH_OVERRIDES, "vector_save_interval_s": 0})
    with RunningWatcher(settings, [root], toy_encoder) as rw:
        shutil.copy(library_files(library)[1], root / "b.jpg")
        wait_for(lambda: len(ok_rows(rw.catalog)) == 2, 20, "b.jpg")
    assert not list(settings.layout.vectors.glob("*.faiss")) and rw.watcher.writer._vectors is None


def test_events_are_filtered_and_translated_before_they_are_queued():
    from watchdog.events import DirMovedEvent, FileCreatedEvent, FileMovedEvent, FileOpenedEvent

    from indexer.watch.events import GONE, MOVED, TOUCHED, EventQueue, RootEventHandler

    q = EventQueue(maxsize=3)
    h = RootEventHandler("/r", q, skip={"/r/data"})
    h.dispatch(FileCreatedEvent("/r/a.jpg"))
    h.dispatch(FileCreatedEvent("/r/notes.txt"))  # not a photo
    h.dispatch(FileCreatedEvent("/r/.hidden/b.jpg"))  # a hidden folder
    h.dispatch(FileCreatedEvent("/r/@eaDir/b.jpg"))  # a NAS thumbnail cache
    h.dispatch(FileCreatedEvent("/r/data/vectors/x.jpg"))  # photoseek's own data dir
    h.dispatch(FileOpenedEvent("/r/a.jpg"))  # reading is not changing
    h.dispatch(FileMovedEvent("/r/c.jpg.part", "/r/c.jpg"))  # a download finishing: a create
    h.dispatch(DirMovedEvent("/r/x", "/r/y"))
    h.dispatch(FileMovedEvent("/r/x/1.jpg", "/r/y/1.jpg"))  # part of the folder move: dropped
    got = [(e.kind, e.path, e.dest) for e in q.drain(0.1)]
    assert got == [(TOUCHED, "/r/a.jpg", ""), (TOUCHED, "/r/c.jpg", ""), (MOVED, "/r/x", "/r/y")]
    h.dispatch(FileMovedEvent("/r/d.jpg", "/r/#recycle/d.jpg"))  # into the recycle bin: a delete
    h.dispatch(FileMovedEvent("/r/e.jpg", "/elsewhere/e.jpg"))  # out of the root: a delete
    assert [(e.kind, e.path) for e in q.drain(0.1)] == [(GONE, "/r/d.jpg"), (GONE, "/r/e.jpg")]
    for i in range(5):  # the queue holds 3: the rest is dropped and the root flagged for a reconcile
        h.dispatch(FileCreatedEvent(f"/r/{i}.jpg"))
    assert len(q.drain(0.1)) == 3 and q.take_overflowed() == {"/r"} and q.take_overflowed() == set()
