"""The `photoseek` command line: a thin click layer over the Python API."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import click

from indexer.settings import Settings, load_settings

log = logging.getLogger("photoseek")


class UserError(click.ClickException):
    """An error the user can act on: printed without a traceback, exit code 2."""

    exit_code = 2


def friendly_errors(fn: Callable) -> Callable:
    """Turn the library's expected failures into one clear line and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from indexer.encoder import ModelUnavailable
        from indexer.lock import WriterLocked
        from indexer.pipeline import ModelMismatch
        from indexer.query import QueryError

        try:
            return fn(*args, **kwargs)
        except (ModelUnavailable, ModelMismatch, WriterLocked, QueryError, ValueError) as exc:
            raise UserError(str(exc)) from exc

    return wrapper


def effective_settings(settings: Settings) -> Settings:
    """With no --model given, use the model the library was indexed with."""
    if settings.model != Settings.model or not settings.catalog_path.exists():
        return settings
    from indexer.catalog import open_catalog

    catalog = open_catalog(settings.data_dir)
    try:
        spec = catalog.active_spec()
    finally:
        catalog.close()
    return settings.replace(model=spec) if spec else settings


def setup_torch(settings: Settings) -> None:
    import torch

    if settings.torch_threads > 0:
        torch.set_num_threads(settings.torch_threads)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    envvar="PHOTOSEEK_DATA_DIR",
    help="Where the catalog, vectors and thumbnails live [~/.local/share/photoseek].",
)
@click.option(
    "--config",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="A photoseek.toml (default: DATA_DIR/photoseek.toml).",
)
@click.option(
    "--model",
    help="NAME:PRETRAINED, NAME:/path/weights, NAME:random or 'toy' "
    "(default: the library's model, else ViT-B-32-256:datacomp_s34b_b86k).",
)
@click.option("--device", help="auto, cpu, cuda or mps.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.pass_context
def cli(ctx: click.Context, data_dir, config, model, device, verbose, quiet) -> None:
    """photoseek: find photos by describing them."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    # Third-party libraries (open_clip logs to the root logger) speak only at WARNING and above.
    logging.basicConfig(
        level=max(level, logging.WARNING), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for ours in ("photoseek", "indexer", "searchd", "generation"):
        logging.getLogger(ours).setLevel(level)
    try:
        ctx.obj = load_settings(data_dir=data_dir, config=config, model=model, device=device)
    except ValueError as exc:
        raise UserError(str(exc)) from exc


@cli.command("demo-library")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--n", "count", default=400, show_default=True, help="How many images.")
@click.option("--seed", default=0, show_default=True, help="Same seed, same library.")
def demo_library(directory: Path, count: int, seed: int) -> None:
    """Draw a library of the toy world (coloured shapes on backgrounds) into DIRECTORY."""
    from indexer.toyworld import build_library

    records = build_library(directory, count, seed)
    click.echo(f"wrote {len(records)} images and manifest.jsonl to {directory}")


@cli.command()
@click.argument("roots", nargs=-1, type=click.Path(path_type=Path, file_okay=False))
@click.option("--workers", type=int, help="Decoding processes (default: one per core; 0: none).")
@click.option("--batch-size", type=int, help="Images embedded and committed together.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.pass_obj
@friendly_errors
def index(settings: Settings, roots: tuple[Path, ...], workers, batch_size, progress: bool) -> None:
    """Index the photos under ROOTS once (new, changed, moved and deleted files), then exit."""
    from indexer.catalog import open_catalog
    from indexer.encoder import load_encoder
    from indexer.lock import WriterLock
    from indexer.pipeline import Writer

    settings = effective_settings(settings).replace(workers=workers, batch_size=batch_size)
    roots = settings.library_roots(roots)
    if not roots:
        raise UserError("name at least one photo folder: photoseek index ~/Pictures")
    setup_torch(settings)
    started = time.monotonic()
    with WriterLock(settings.data_dir):
        catalog = open_catalog(settings.data_dir)
        encoder = load_encoder(settings.model, settings.device)
        hooks = batch_hooks(settings, catalog, lambda: encoder)
        writer = Writer(settings, catalog, lambda: encoder, hooks=hooks)
        for hook in hooks:
            hook.prepare(writer.model_id)
        encoder.release_text_tower()  # indexing embeds images only (bench/RESULTS.md: peak RSS)
        summary = writer.index_roots(roots, progress=progress)
    elapsed = time.monotonic() - started
    click.echo(summary.text())
    click.echo(f"done in {elapsed:.1f}s ({summary.embedded / max(elapsed, 1e-9):.1f} images/s embedded)")


def batch_hooks(settings: Settings, catalog, encoder: Callable | None = None) -> list:
    """Work done inside each indexing batch by other features (tag suggestions).

    `encoder`: the writer's encoder provider, so that a hook need not load a second copy of the model.
    """
    from indexer.tags.suggest import index_time_hook

    return [index_time_hook(settings, catalog, encoder)]


@cli.command()
@click.argument("text", required=False, default="")
@click.option(
    "--image",
    "images",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Search by an example photo (repeatable; add :W for a weight is not needed, see --help).",
)
@click.option("--like", "likes", multiple=True, type=int, help="An indexed image's id: more like this.")
@click.option("--minus", "minuses", multiple=True, help="Text to steer away from (weight -1).")
@click.option("-n", "--limit", default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@friendly_errors
def search(settings: Settings, text: str, images, likes, minuses, limit: int, as_json: bool) -> None:
    """Search the library by TEXT, by --image, or both.

    \b
    TEXT can combine weighted parts separated by '|', each with an optional :WEIGHT:
      photoseek search "red circle"
      photoseek search "red circle | blue background:-1"      (same as --minus "blue background")
      photoseek search "sunset:2 | beach" --image ref.jpg
      photoseek search "#42 | more red:0.5"                   (#ID: an indexed image)
    """
    from indexer.catalog import open_catalog
    from indexer.encoder import load_encoder
    from indexer.query import Part, parse_query
    from indexer.search import Searcher

    settings = effective_settings(settings)
    setup_torch(settings)
    parts = parse_query(text) + [Part("image", str(p)) for p in images] + [Part("id", str(i)) for i in likes]
    parts += [Part("text", m, -1.0) for m in minuses]
    catalog = open_catalog(settings.data_dir)
    encoder = load_encoder(settings.model, settings.device)
    hits = Searcher(settings, catalog, lambda: encoder).search(parts, limit=limit)
    if as_json:
        click.echo(json.dumps([h.as_dict() for h in hits], indent=2))
        return
    if not hits:
        click.echo("no matches")
    for h in hits:
        click.echo(f"{h.score:7.4f}  #{h.id:<6} {h.path}")


@cli.command()
@click.option("--model", "new_model", required=True, help="The model to switch the library to.")
@click.pass_obj
@friendly_errors
def reembed(settings: Settings, new_model: str) -> None:
    """Embed every photo with another model and make it the library's model."""
    from indexer.catalog import open_catalog
    from indexer.encoder import load_encoder
    from indexer.lock import WriterLock
    from indexer.reembed import reembed as run_reembed

    settings = settings.replace(model=new_model)
    setup_torch(settings)
    with WriterLock(settings.data_dir):
        catalog = open_catalog(settings.data_dir)
        encoder = load_encoder(new_model, settings.device)
        done, failed = run_reembed(settings, catalog, encoder, progress=True)
    click.echo(f"re-embedded {done} images with {encoder.identity.label}; {failed} could not be read")


@cli.command()
@click.argument("filter_text", required=False, default="")
def models(filter_text: str) -> None:
    """List open_clip architectures and pretrained tags (NAME:PRETRAINED) and the toy model."""
    import open_clip

    click.echo("toy  (the toy CLIP trained on the synthetic world; ships with photoseek)")
    for name, tag in open_clip.list_pretrained():
        if filter_text.lower() in f"{name}:{tag}".lower():
            click.echo(f"{name}:{tag}")


@cli.command("fetch-model")
@click.argument("spec")
@friendly_errors
def fetch_model(spec: str) -> None:
    """Download a model's weights into the local cache (needs internet once)."""
    import open_clip

    from indexer.encoder import ModelSpec

    parsed = ModelSpec.parse(spec)
    open_clip.create_model(parsed.name, pretrained=parsed.weights)
    click.echo(f"{spec} is cached; photoseek can now use it offline")


def main() -> None:
    cli(prog_name="photoseek")
