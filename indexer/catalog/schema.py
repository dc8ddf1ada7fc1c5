"""Typed SQLAlchemy models. The migrations in migrations/ create exactly this schema (a test checks)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Image.status values. A row is searchable only when OK; DELETED rows are kept so that a file that
# comes back (a move seen as delete + create, a restored backup) gets its old id, tags and embedding.
OK = "ok"
FAILED = "failed"
DELETED = "deleted"

# ImageTag.state values: a suggestion, or a person's decision (a rejected tag is never suggested again).
SUGGESTED, ACCEPTED, REJECTED = "suggested", "accepted", "rejected"

# Change.kind values: every change that affects search advances the sequence (docs/design.md inv. 2).
ADDED, CHANGED, MOVED, REMOVED, EMBEDDED = "added", "changed", "moved", "removed", "embedded"


class Base(DeclarativeBase):
    pass


class Root(Base):
    """A photo folder the user pointed photoseek at."""

    __tablename__ = "roots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String, unique=True)
    online: Mapped[bool] = mapped_column(default=True)
    observer: Mapped[str | None] = mapped_column(String, default=None)  # "native" / "polling" while watched
    added_at: Mapped[datetime] = mapped_column(DateTime)
    last_scan_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)

    images: Mapped[list[Image]] = relationship(
        back_populates="root", cascade="all, delete-orphan", passive_deletes=True
    )


class Image(Base):
    """One file in a root. Its id is the FAISS id, and survives moves and renames."""

    __tablename__ = "images"
    __table_args__ = (
        Index("ix_images_hash", "content_hash"),
        Index("ix_images_status", "status"),
        Index("ix_images_taken_at", "taken_at"),
        # Filters and facets as index ranges and seeks at 10M photos (migration 0002, docs/scale.md)
        Index("ix_images_status_path", "status", "path"),
        Index("ix_images_status_camera", "status", "camera"),
        Index("ix_images_status_format", "status", "format"),
        Index("ix_images_status_taken_mtime", "status", "taken_at", "mtime"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    root_id: Mapped[int] = mapped_column(ForeignKey("roots.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String, unique=True)  # absolute
    size: Mapped[int] = mapped_column(Integer, default=0)
    mtime: Mapped[float] = mapped_column(Float, default=0.0)
    content_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    format: Mapped[str | None] = mapped_column(String(16), default=None)  # JPEG, PNG, HEIF, ...
    width: Mapped[int | None] = mapped_column(Integer, default=None)  # as displayed (after EXIF rotation)
    height: Mapped[int | None] = mapped_column(Integer, default=None)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)  # EXIF DateTimeOriginal
    camera: Mapped[str | None] = mapped_column(String, default=None)  # "Make Model"
    caption: Mapped[str | None] = mapped_column(Text, default=None)  # e.g. a generated image's prompt
    generated: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default=OK)
    error: Mapped[str | None] = mapped_column(Text, default=None)  # why it FAILED
    note: Mapped[str | None] = mapped_column(Text, default=None)  # indexed, but something is odd
    indexed_at: Mapped[datetime] = mapped_column(DateTime)

    root: Mapped[Root] = relationship(back_populates="images")


class Model(Base):
    """An embedding space: which model, which weights, how many dimensions."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("name", "pretrained", "file_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String)  # open_clip architecture
    pretrained: Mapped[str] = mapped_column(String)  # registry tag, or "file"/"random"
    file_hash: Mapped[str] = mapped_column(String(64), default="")  # weights file hash when local
    dim: Mapped[int] = mapped_column(Integer)
    spec: Mapped[str] = mapped_column(String, default="")  # how to load it again, e.g. "toy"
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Embedding(Base):
    """One vector per (model, content): duplicates and moved files share it, nothing re-embeds."""

    __tablename__ = "embeddings"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, unit norm
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Change(Base):
    """The change sequence. AUTOINCREMENT keeps seq monotonic: a number is never reused."""

    __tablename__ = "changes"
    __table_args__ = ({"sqlite_autoincrement": True},)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image_id: Mapped[int | None] = mapped_column(Integer, default=None)  # None: affects every image
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime)


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True)
    source: Mapped[str] = mapped_column(String(16), default="user")  # "vocabulary" or "user"
    created_at: Mapped[datetime] = mapped_column(DateTime)


class ImageTag(Base):
    """A tag on an image: suggested (with its score), accepted or rejected (never suggested again)."""

    __tablename__ = "image_tags"
    __table_args__ = (Index("ix_image_tags_tag_state_image", "tag_id", "state", "image_id"),)

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # "suggested" / "accepted" / "rejected"
    score: Mapped[float | None] = mapped_column(Float, default=None)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"), default=None)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class GenerationJob(Base):
    __tablename__ = "generation_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prompt: Mapped[str] = mapped_column(Text)
    params: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued/running/done/failed/cancelled
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    result_path: Mapped[str | None] = mapped_column(String, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class Folder(Base):
    """A folder holding OK images, with their count: the folder facet without reading every path.
    Kept by triggers on images (migration 0002), whoever writes the rows."""

    __tablename__ = "folders"

    path: Mapped[str] = mapped_column(String, primary_key=True)
    images: Mapped[int] = mapped_column(Integer)


class Setting(Base):
    """Small key/value facts about the catalog, such as the active model."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(Text)
