"""`photoseek watch` and `photoseek status`: thin click commands over the Library and indexer.watch."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import click

from indexer.cli import friendly_errors, open_library, parse_ray, ray_options
from indexer.errors import BadInput
from indexer.settings import Settings

log = logging.getLogger("indexer.watch")


@click.command()
@click.argument("roots", nargs=-1, type=click.Path(path_type=Path, file_okay=False))
@click.option("--poll", "force_polling", is_flag=True, default=None, help="Poll every root (force_polling).")
@click.option("--poll-interval", "poll_interval_s", type=float, help="Seconds between polls [30].")
@click.option("--settle", "settle_s", type=float, help="Seconds a file must stay unchanged [2].")
@click.option("--workers", type=int, help="Decoding processes (default: one per core; 0: none).")
@click.option("--batch-size", type=int, help="Images embedded and committed together.")
@click.option("--scan-only", is_flag=True, help="Reconcile the roots once, then exit (no watching).")
@ray_options
@click.pass_obj
@friendly_errors
def watch(
    settings: Settings,
    roots: tuple[Path, ...],
    scan_only: bool,
    ray_address: str | None,
    ray_path_map: tuple[str, ...],
    ray_actors: int,
    **overrides,
) -> None:
    """Index ROOTS, then keep the index in step with every change until stopped.

    \b
    Roots default to the `roots` setting. Network shares (SMB, NFS, FUSE, ...) are polled every
    poll_interval_s, since inotify cannot see changes made by other machines. SIGTERM or Ctrl-C
    finishes the batch in hand, saves the vector index and exits 0. With --ray, the first scan reads
    and embeds on a Ray cluster (docs/distributed.md); the changes after it are indexed here.
    """
    ray = parse_ray(ray_address, ray_path_map, ray_actors)
    roots = settings.replace(**overrides).library_roots(roots)
    if not roots:
        raise BadInput("name at least one photo folder (photoseek watch ~/Pictures), or set `roots`")
    if settings.nice:
        os.nice(settings.nice)  # a NAS serves files first; indexing takes what CPU is left
    with open_library(settings, **overrides) as library, library.writer_lock():
        # Imported under the lock: a second watcher is refused before it spends seconds on imports.
        from indexer.watch.daemon import Watcher
        from indexer.watch.once import OncePerReason

        once = OncePerReason()
        logging.getLogger("indexer.writer").addFilter(once)  # the writer logs "skipping FILE: REASON"
        watcher = Watcher(library, roots, ray=ray)
        signals = (signal.SIGTERM, signal.SIGINT)
        previous = {sig: signal.signal(sig, lambda *_: watcher.stop()) for sig in signals}
        try:
            log.info("watching %s", ", ".join(watcher.roots))
            watcher.run(scan_only=scan_only)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            logging.getLogger("indexer.writer").removeFilter(once)
    once.report()


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@friendly_errors
def status(settings: Settings, as_json: bool) -> None:
    """Roots (online, observer), counts, failures by reason, and what the watcher is doing."""
    import json

    from indexer.catalog.summary import summarize_catalog
    from indexer.watch.status import read_watch_status, render_status

    with open_library(settings, must_exist=True) as library:
        summary = summarize_catalog(library.catalog)
    watcher, why_not = read_watch_status(settings.layout.watch_status)
    if as_json:
        doc = {
            "watcher": watcher,
            "watcher_note": why_not,
            "roots": summary.roots,
            "counts": dict(summary.counts),
            "failures": dict(summary.failures),
            "last_change": summary.last_change,
        }
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(render_status(summary, watcher, why_not))
