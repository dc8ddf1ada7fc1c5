"""`photoseek classify` and `photoseek tags ...`: a thin click layer over indexer.tags."""

from __future__ import annotations

import json
from pathlib import Path

import click

from indexer.cli import friendly_errors, open_library
from indexer.errors import BadInput, DecodeError
from indexer.settings import Settings


def _image_id(text: str) -> int | None:
    text = text.lstrip("#")
    return int(text) if text.isdigit() else None


def _picture(path: Path, settings: Settings):
    from indexer.decode import decode_bytes

    try:
        return decode_bytes(path.read_bytes(), path.name, settings.max_megapixels).image
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from exc
    except DecodeError as exc:
        raise BadInput(f"cannot classify {path}: {exc}") from exc


def _vector_or_picture(library, image: str):
    """IMAGE as the catalog's vector (#ID of an indexed photo, checked against the model) or a picture."""
    path = Path(image)
    image_id = _image_id(image) if not path.exists() else None
    if image_id is not None:
        library.check_model(library.encoder().identity)
        return library.stored_vector(image_id)
    if path.is_file():
        return _picture(path, library.settings)
    raise BadInput(f"{image} is neither an image file nor an indexed image's #ID")


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

    wanted = parse_labels(labels)
    with open_library(settings) as library:
        picture = _vector_or_picture(library, image)
        result = run_classify(library.encoder(), picture, wanted)
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
    import numpy as np

    from indexer.tags.suggest import Suggester

    with open_library(settings) as library:
        encoder = library.encoder()
        picture = _vector_or_picture(library, image)
        vector = picture if isinstance(picture, np.ndarray) else encoder.encode_images([picture])[0]
        suggester = Suggester(library.settings, encoder.identity, library.encoder)
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

    with open_library(settings, must_exist=True) as library:
        counts = tag_counts(library.catalog)
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
        from indexer.tags.store import apply

        number = _image_id(image_id)
        if number is None:
            raise BadInput(f"{image_id!r} is not an image id (see `photoseek search --json`)")
        name = " ".join(tag)  # `tags add 42 new york` works without quotes
        with open_library(settings, must_exist=True) as library:
            apply(library.catalog, number, name, action)
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
    from indexer.tags.suggest import Suggester

    with open_library(settings, must_exist=True) as library, library.writer_lock():
        model_id = library.check_model()
        suggester = Suggester(library.settings, library.encoder().identity, library.encoder)
        images, count = suggester.recompute(library.catalog, model_id)
    click.echo(
        f"suggested {count} tags for {images} photos ({len(suggester.vocabulary.concepts)} concepts, "
        f"threshold {suggester.threshold})"
    )
