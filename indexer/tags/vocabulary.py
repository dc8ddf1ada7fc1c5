"""The vocabulary: the concepts photoseek may suggest as tags, kept as data in text files.

File format (docs/tags.md has the long version), one entry per line:

    # a comment (also after an entry: `dog  # our pet`)
    dog                                   a concept; its prompts come from the templates
    screenshot | a screenshot of a phone; a screenshot of a computer screen
                                          a concept with its own prompts (';'-separated, no templates)
    @template a photo of a {}.            prompt templates (when a file names any, they replace the defaults)
    @neutral a photo                      neutral prompts: what "no particular concept" looks like
    @replace                              (user file only) drop the built-in list instead of extending it
    -selfie                               (user file only) drop one built-in concept

Which built-in list applies depends on the model: the toy CLIP only knows its drawn world, so it gets
toyworld.txt; every other model gets default.txt. A user file (Settings.vocabulary) extends that list
unless it says @replace.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from indexer.errors import BadInput

VOCAB_DIR = Path(__file__).resolve().parent.parent / "vocab"
DEFAULT_FILE = VOCAB_DIR / "default.txt"
TOYWORLD_FILE = VOCAB_DIR / "toyworld.txt"
TOY_MODEL_NAME = "photoseek-toy"  # indexer.encoder.TOY_ARCH; not imported to keep torch out

# CLIP's own ensembles for photos (Radford et al. 2021, the ImageNet prompt set, shortened to the
# templates that suit personal photos). A vocabulary file may replace them with @template lines.
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a close-up photo of the {}.",
    "a picture of a {}.",
    "a bright photo of a {}.",
    "a dark photo of the {}.",
    "a cropped photo of a {}.",
    "a good photo of the {}.",
)
DEFAULT_NEUTRAL: tuple[str, ...] = ("a photo.", "an image.", "a picture of something.", "a photo of a thing.")

MAX_TAG_LENGTH = 100


class VocabularyError(BadInput):
    """A vocabulary file cannot be used; the message names the file and line."""


def normalize_tag(name: str) -> str:
    """The canonical form of a tag name: trimmed, single spaces, lower case ("Red  Car " -> "red car")."""
    text = " ".join(name.split()).lower()
    if not text:
        raise BadInput("a tag name cannot be empty")
    if len(text) > MAX_TAG_LENGTH:
        raise BadInput(f"tag name {text[:30]!r}... is longer than {MAX_TAG_LENGTH} characters")
    return text


@dataclass(frozen=True)
class Concept:
    name: str
    prompts: tuple[str, ...] = ()  # its own prompts; empty: the vocabulary's templates

    def texts(self, templates: tuple[str, ...]) -> list[str]:
        return list(self.prompts) if self.prompts else [t.format(self.name) for t in templates]


@dataclass(frozen=True)
class Vocabulary:
    concepts: tuple[Concept, ...]
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    neutral: tuple[str, ...] = DEFAULT_NEUTRAL
    sources: tuple[str, ...] = field(default=())  # the files it was read from, for messages

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.concepts]

    @property
    def hash(self) -> str:
        """Changes whenever any prompt text would change: the key of cached text embeddings."""
        doc = {
            "concepts": [[c.name, list(c.texts(self.templates))] for c in self.concepts],
            "neutral": list(self.neutral),
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


@dataclass
class _Parsed:
    concepts: dict[str, Concept] = field(default_factory=dict)
    templates: list[str] = field(default_factory=list)
    neutral: list[str] = field(default_factory=list)
    removed: set[str] = field(default_factory=set)
    replace: bool = False


_COMMENT = re.compile(r"\s#.*$")


def parse_vocabulary(text: str, source: str = "<text>") -> _Parsed:
    out = _Parsed()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _COMMENT.sub("", raw).strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}, line {number}"
        if line.startswith("@"):
            directive, _, arg = line[1:].partition(" ")
            arg = arg.strip()
            if directive == "template":
                if arg.count("{}") != 1:
                    raise VocabularyError(f"{where}: a template needs exactly one {{}}, got {arg!r}")
                out.templates.append(arg)
            elif directive == "neutral" and arg:
                out.neutral.append(arg)
            elif directive == "replace" and not arg:
                out.replace = True
            else:
                raise VocabularyError(
                    f"{where}: unknown directive {line!r} (known: @template, @neutral, @replace)"
                )
            continue
        if line.startswith("-"):
            out.removed.add(_name(line[1:], where))
            continue
        name, sep, override = line.partition("|")
        concept_name = _name(name, where)
        prompts = tuple(p.strip() for p in override.split(";") if p.strip()) if sep else ()
        if sep and not prompts:
            raise VocabularyError(f"{where}: {concept_name!r} has a '|' but no prompts after it")
        out.concepts[concept_name] = Concept(concept_name, prompts)  # a later line wins
    return out


def _name(text: str, where: str) -> str:
    try:
        return normalize_tag(text)
    except ValueError as exc:
        raise VocabularyError(f"{where}: {exc}") from exc


def builtin_file(model_name: str | None) -> Path:
    """The built-in list for a model: the toy CLIP knows only the toy world."""
    return TOYWORLD_FILE if model_name == TOY_MODEL_NAME else DEFAULT_FILE


def read_file(path: Path) -> _Parsed:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise VocabularyError(f"cannot read vocabulary {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise VocabularyError(f"vocabulary {path} is not UTF-8 text ({exc.reason})") from exc
    return parse_vocabulary(text, str(path))


def load_vocabulary(user_file: str | Path | None = None, model_name: str | None = None) -> Vocabulary:
    """The vocabulary in effect: the model's built-in list, extended (or replaced) by `user_file`."""
    base_path = builtin_file(model_name)
    base = read_file(base_path)
    sources = [str(base_path)]
    if not user_file:
        return _build(base, sources)
    user_path = Path(user_file).expanduser()
    user = read_file(user_path)
    if user.replace:
        return _build(user, [str(user_path)])
    merged = _Parsed(
        concepts={k: v for k, v in base.concepts.items() if k not in user.removed},
        templates=user.templates or base.templates,
        neutral=user.neutral or base.neutral,
    )
    merged.concepts.update(user.concepts)
    return _build(merged, sources + [str(user_path)])


def _build(parsed: _Parsed, sources: list[str]) -> Vocabulary:
    if not parsed.concepts:
        raise VocabularyError(f"vocabulary {', '.join(sources)} has no concepts")
    return Vocabulary(
        concepts=tuple(parsed.concepts.values()),
        templates=tuple(parsed.templates) or DEFAULT_TEMPLATES,
        neutral=tuple(parsed.neutral) or DEFAULT_NEUTRAL,
        sources=tuple(sources),
    )
