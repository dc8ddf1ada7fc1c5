"""`photoseek watch` and `photoseek status`: thin click commands over indexer.watch."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import click

from indexer.cli import UserError, batch_hooks, effective_settings, friendly_errors, setup_torch
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
@click.pass_obj
@friendly_errors
def watch(settings: Settings, roots: tuple[Path, ...], scan_only: bool, **overrides) -> None:
    """Index ROOTS, then keep the index in step with every change until stopped.

    \b
    Roots default to the `roots` setting. Network shares (SMB, NFS, FUSE, ...) are polled every
    poll_interval_s, since inotify cannot see changes made by other machines. SIGTERM or Ctrl-C
    finishes the batch in hand, saves the vector index and exits 0.
    """
    from indexer.catalog import open_catalog
    from indexer.lock import WriterLock

    settings = effective_settings(settings).replace(**overrides)
    roots = settings.library_roots(roots)
    if not roots:
        raise UserError("name at least one photo folder (photoseek watch ~/Pictures), or set `roots`")
    if settings.nice:
        os.nice(settings.nice)  # a NAS serves files first; indexing takes what CPU is left
    with WriterLock(settings.data_dir):
        # Imported under the lock: a second watcher is refused before it spends seconds on torch.
        from indexer.encoder import load_encoder
        from indexer.watch.daemon import Watcher
        from indexer.watch.model_cache import EncoderCache
        from indexer.watch.once import OncePerReason

        setup_torch(settings)
        once = OncePerReason()
        logging.getLogger("indexer.pipeline").addFilter(once)  # the Writer logs "skipping FILE: REASON"
        catalog = open_catalog(settings.data_dir)
        prepared: list[bool] = []

        def load():
            enc = load_encoder(settings.model, settings.device)
            if prepared:  # a reload after an idle unload: the concept embeddings are in hand
                enc.release_text_tower()
            return enc

        encoder = EncoderCache(load, settings.model_idle_unload_s)
        hooks = batch_hooks(settings, catalog, encoder)
        watcher = Watcher(settings, catalog, encoder, roots, hooks=hooks)
        for hook in hooks:
            hook.prepare(watcher.writer.model_id)
        prepared.append(True)
        encoder().release_text_tower()  # the watcher embeds images only (bench/RESULTS.md: peak RSS)
        signals = (signal.SIGTERM, signal.SIGINT)
        previous = {sig: signal.signal(sig, lambda *_: watcher.stop()) for sig in signals}
        try:
            log.info("watching %s", ", ".join(watcher.roots))
            watcher.run(scan_only=scan_only)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            catalog.close()
            logging.getLogger("indexer.pipeline").removeFilter(once)
    once.report()


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@friendly_errors
def status(settings: Settings, as_json: bool) -> None:
    """Roots (online, observer), counts, failures by reason, and what the watcher is doing."""
    import json

    from indexer.catalog import open_catalog
    from indexer.watch.status import read_watch_status, render_status, summarize_catalog

    if not settings.catalog_path.exists():
        raise UserError(f"no catalog in {settings.data_dir} yet: run `photoseek watch FOLDER` first")
    catalog = open_catalog(settings.data_dir)
    try:
        summary = summarize_catalog(catalog)
    finally:
        catalog.close()
    watcher, why_not = read_watch_status(settings.data_dir)
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
