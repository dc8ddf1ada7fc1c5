"""The `photoseek` command line: a thin click layer over the Library (indexer/library.py).

Commands open the library with `open_library`, do one thing through it, and print. Failures the user
can act on are PhotoseekErrors (indexer/errors.py); `friendly_errors` turns them into one line and
their exit code, here and nowhere else.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import click

from indexer.errors import BadInput, PhotoseekError
from indexer.settings import Settings, load_settings

log = logging.getLogger("photoseek")


class UserError(click.ClickException):
    """An error the user can act on: printed without a traceback."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def friendly_errors(fn: Callable) -> Callable:
    """PhotoseekError -> one clear line and its exit code (the one mapping to exit codes)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PhotoseekError as exc:
            raise UserError(str(exc), exc.exit_code) from exc

    return wrapper


class LazyGroup(click.Group):
    """A group that imports a command's module when the command runs, not at start-up: the server's,
    the watcher's and generation's modules cost `photoseek search` ~0.15 s it does not need."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, str] = {}

    def add_lazy(self, name: str, target: str) -> None:
        """`target` is "module:attribute", imported the first time `name` is looked up."""
        self.lazy[name] = target

    def list_commands(self, ctx: click.Context | None) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context | None, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, attr = self.lazy[cmd_name].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return self.commands.get(cmd_name)


def open_library(settings: Settings, must_exist: bool = False, **overrides):
    """The Library of these settings: how every command gets at catalog, models, writer and searcher."""
    from indexer.library import Library

    return Library.open(settings.replace(**overrides), must_exist=must_exist)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


def ray_options(fn: Callable) -> Callable:
    """--ray ADDRESS and its companions: read and embed on a Ray cluster (docs/distributed.md)."""
    fn = click.option(
        "--ray-actors", type=int, default=0, help="Embedding actors [one per GPU, else one per node]."
    )(fn)
    fn = click.option(
        "--ray-path-map",
        multiple=True,
        metavar="HERE=THERE",
        help="Workers read photos under HERE from their mount at THERE [default: the bytes are sent].",
    )(fn)
    return click.option(
        "--ray",
        "ray_address",
        metavar="ADDRESS",
        help="Read and embed on the Ray cluster at HOST:PORT ('auto': the one this machine is in).",
    )(fn)


def parse_ray(ray_address: str | None, ray_path_map: tuple[str, ...], ray_actors: int):
    if not ray_address:
        if ray_path_map or ray_actors:
            raise BadInput("--ray-path-map and --ray-actors go with --ray ADDRESS")
        return None
    from indexer.distributed import RayOptions

    return RayOptions.parse(ray_address, ray_path_map, ray_actors)


@cli.command()
@click.argument("roots", nargs=-1, type=click.Path(path_type=Path, file_okay=False))
@click.option("--workers", type=int, help="Decoding processes (default: one per core; 0: none).")
@click.option("--batch-size", type=int, help="Images embedded and committed together.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@ray_options
@click.pass_obj
@friendly_errors
def index(
    settings: Settings, roots: tuple[Path, ...], workers, batch_size, progress: bool, **ray_args
) -> None:
    """Index the photos under ROOTS once (new, changed, moved and deleted files), then exit."""
    started = time.monotonic()
    ray = parse_ray(**ray_args)
    with open_library(settings, workers=workers, batch_size=batch_size) as library:
        roots = library.settings.library_roots(roots)
        if not roots:
            raise BadInput("name at least one photo folder: photoseek index ~/Pictures")
        with library.writer_lock():
            writer = library.writer(images_only=True, ray=ray)
            cluster = writer.cluster
            summary = writer.index_roots(roots, progress=progress)
    elapsed = time.monotonic() - started
    click.echo(summary.text())
    if cluster is not None and cluster.rates.started is not None:
        click.echo(cluster.report())
    click.echo(f"done in {elapsed:.1f}s ({summary.embedded / max(elapsed, 1e-9):.1f} images/s embedded)")


@cli.command()
@click.argument("text", required=False, default="")
@click.option(
    "--image",
    "images",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Search by an example photo (repeatable).",
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
    from indexer import remote

    hits = None
    url = remote.served_url(settings.layout.serve_info) if not settings.model and not images else None
    if url:  # a running `photoseek serve` holds the model and the index: ask it (docs/settings.md)
        hits = remote.search(url, settings.auth_token, text, list(likes), list(minuses), limit)
    if hits is None:
        hits = _search_here(settings, text, images, likes, minuses, limit)
    if as_json:
        click.echo(json.dumps(hits, indent=2))
        return
    if not hits:
        click.echo("no matches")
    for h in hits:
        click.echo(f"{h['score']:7.4f}  #{h['id']:<6} {h['path']}")


def _search_here(settings: Settings, text: str, images, likes, minuses, limit: int) -> list[dict]:
    from indexer.query import Part, parse_query

    parts = parse_query(text) + [Part("image", str(p)) for p in images] + [Part("id", str(i)) for i in likes]
    parts += [Part("text", m, -1.0) for m in minuses]
    with open_library(settings, must_exist=True) as library:
        return [h.as_dict() for h in library.searcher().search(parts, limit=limit)]


@cli.command()
@click.option("--model", "new_model", required=True, help="The model to switch the library to.")
@ray_options
@click.pass_obj
@friendly_errors
def reembed(settings: Settings, new_model: str, **ray_args) -> None:
    """Embed every photo with another model and make it the library's model."""
    from indexer.reembed import reembed as run_reembed

    ray = parse_ray(**ray_args)
    with open_library(settings, must_exist=True, model=new_model) as library, library.writer_lock():
        cluster = library.ray_stage(ray) if ray is not None else None
        done, failed = run_reembed(library, progress=True, cluster=cluster)
        label = library.encoder().identity.label
    click.echo(f"re-embedded {done} images with {label}; {failed} could not be read")
    if cluster is not None and cluster.rates.started is not None:
        click.echo(cluster.report())


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
