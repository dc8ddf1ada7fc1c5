"""`photoseek classify` and `photoseek tags ...`: a thin click layer over indexer.tags."""

from __future__ import annotations

import json
from pathlib import Path

import click

from indexer.cli import UserError, effective_settings, friendly_errors, setup_torch
from indexer.settings import Settings


def _load(settings: Settings):
    from indexer.encoder import load_encoder

    setup_torch(settings)
    return load_encoder(settings.model, settings.device)


def _open(settings: Settings):
    from indexer.catalog import open_catalog

    if not settings.catalog_path.exists():
        raise UserError(f"there is no library in {settings.data_dir} yet: run `photoseek index FOLDER` first")
    return open_catalog(settings.data_dir)


def _image_id(text: str) -> int | None:
    text = text.lstrip("#")
    return int(text) if text.isdigit() else None


def _picture(path: Path, settings: Settings):
    from indexer.decode import DecodeError, decode_bytes

    try:
        return decode_bytes(path.read_bytes(), path.name, settings.max_megapixels).image
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except DecodeError as exc:
        raise UserError(f"cannot classify {path}: {exc}") from exc


def _stored_vector(settings: Settings, encoder, image_id: int):
    """The catalog's embedding of an indexed image (refused if the library uses another model)."""
    from indexer.pipeline import ModelMismatch

    catalog = _open(settings)
    try:
        active = catalog.active_model()
        if active != encoder.identity:
            raise ModelMismatch(
                f"image #{image_id} was embedded with {active.label if active else 'no model'}, "
                f"not {encoder.identity.label}; drop --model to use the library's model"
            )
        model_id = catalog.model_id(active, create=False)
        ids, vectors = catalog.searchable_vectors(model_id, [image_id])
    finally:
        catalog.close()
    if len(ids) == 0:
        raise UserError(f"image #{image_id} is not in the library (unknown, removed, or failed to index)")
    return vectors[0]


@click.command()
@click.argument("image")
@click.option("--labels", required=True, help='Comma-separated labels to choose between: "cat,dog,human".')
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@friendly_errors
def classify(settings: Settings, image: str, labels: str, as_json: bool) -> None:
    """Say which of the --labels fits IMAGE best (a file, or #ID of an indexed photo), zero-shot.

    \b
      photoseek classify holiday.jpg --labels "beach,mountains,city"
      photoseek classify '#42' --labels "cat,dog" --json
    """
    from indexer.tags.classify import classify as run_classify
    from indexer.tags.classify import parse_labels

    settings = effective_settings(settings)
    wanted = parse_labels(labels)
    encoder = _load(settings)
    path = Path(image)
    image_id = _image_id(image) if not path.exists() else None
    if image_id is not None:
        picture = _stored_vector(settings, encoder, image_id)
    elif path.is_file():
        picture = _picture(path, settings)
    else:
        raise UserError(f"{image} is neither an image file nor an indexed image's #ID")
    result = run_classify(encoder, picture, wanted)
    if as_json:
        click.echo(
            json.dumps(
                {"image": image, "labels": [{"label": k, "probability": round(p, 4)} for k, p in result]}
            )
        )
        return
    for label, probability in result:
        click.echo(f"{probability:7.2%}  {label}")


@click.group()
def tags() -> None:
    """Tag suggestions and your tags: list, accept, reject, add, remove, recompute."""


@tags.command("suggest")
@click.argument("image")
@click.option("-n", "--limit", default=10, show_default=True, help="How many tags to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@friendly_errors
def suggest_cmd(settings: Settings, image: str, limit: int, as_json: bool) -> None:
    """Rank the vocabulary's tags for IMAGE (a file or an indexed photo's ID); '*' marks suggestions."""
    from indexer.tags.suggest import Suggester

    settings = effective_settings(settings)
    encoder = _load(settings)
    path = Path(image)
    image_id = _image_id(image) if not path.exists() else None
    if image_id is not None:
        vector = _stored_vector(settings, encoder, image_id)
    elif path.is_file():
        vector = encoder.encode_images([_picture(path, settings)])[0]
    else:
        raise UserError(f"{image} is neither an image file nor an indexed image's #ID")
    suggester = Suggester(settings, encoder.identity, lambda: encoder)
    ranked = suggester.ranked(vector, limit)
    if as_json:
        rows = [{"name": n, "score": round(s, 4), "suggested": s >= suggester.threshold} for n, s in ranked]
        click.echo(json.dumps({"image": image, "threshold": suggester.threshold, "tags": rows}))
        return
    for name, score in ranked:
        click.echo(f"{'*' if score >= suggester.threshold else ' '} {score:.3f}  {name}")


@tags.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@friendly_errors
def list_cmd(settings: Settings, as_json: bool) -> None:
    """Every tag in use with how many photos have it accepted and suggested."""
    from indexer.tags.store import tag_counts

    catalog = _open(settings)
    try:
        counts = tag_counts(catalog)
    finally:
        catalog.close()
    if as_json:
        click.echo(json.dumps(counts))
        return
    if not counts:
        click.echo("no tags yet: index some photos, or add one with `photoseek tags add ID TAG`")
    click.echo(f"{'accepted':>8} {'suggested':>9}  tag")
    for row in counts:
        click.echo(f"{row['accepted']:>8} {row['suggested']:>9}  {row['name']}")


def _decision(action: str, help_text: str):
    @tags.command(action, help=help_text)
    @click.argument("image_id")
    @click.argument("tag", nargs=-1, required=True)
    @click.pass_obj
    @friendly_errors
    def command(settings: Settings, image_id: str, tag: tuple[str, ...]) -> None:
        from indexer.tags.store import UnknownImage, apply

        number = _image_id(image_id)
        if number is None:
            raise UserError(f"{image_id!r} is not an image id (see `photoseek search --json`)")
        name = " ".join(tag)  # `tags add 42 new york` works without quotes
        catalog = _open(settings)
        try:
            apply(catalog, number, name, action)
        except UnknownImage as exc:
            raise UserError(str(exc)) from exc
        finally:
            catalog.close()
        click.echo(f"#{number}: {action} {' '.join(name.split()).lower()!r}")

    return command


_decision("accept", "Accept the suggestion TAG for image IMAGE_ID (it becomes searchable).")
_decision("reject", "Reject TAG for image IMAGE_ID: it is never suggested for that photo again.")
_decision("add", "Tag image IMAGE_ID with your own TAG.")
_decision("remove", "Remove TAG from image IMAGE_ID, and any decision about it.")


@tags.command("recompute")
@click.pass_obj
@friendly_errors
def recompute(settings: Settings) -> None:
    """Suggest tags afresh for the whole library (after changing the vocabulary or threshold)."""
    from indexer.lock import WriterLock
    from indexer.tags.suggest import Suggester

    settings = effective_settings(settings)
    encoder = _load(settings)
    with WriterLock(settings.data_dir):
        catalog = _open(settings)
        try:
            active = catalog.active_model()
            if active != encoder.identity:
                raise UserError(
                    f"the library uses {active.label if active else 'no model yet'}, not "
                    f"{encoder.identity.label}: drop --model, or index some photos first"
                )
            model_id = catalog.model_id(active, create=False)
            suggester = Suggester(settings, active, lambda: encoder)
            images, count = suggester.recompute(catalog, model_id)
        finally:
            catalog.close()
    click.echo(
        f"suggested {count} tags for {images} photos ({len(suggester.vocabulary.concepts)} concepts, "
        f"threshold {suggester.threshold})"
    )
