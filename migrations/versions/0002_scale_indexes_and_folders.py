"""indexes for filters and facets at 10M photos; folders kept by triggers

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 16:45:00

At 10M images every filter and facet used to scan the images table (bench/RESULTS.md, issue 15):
- (status, path), (status, camera), (status, format), (status, taken_at, mtime): the filters' WHERE
  clauses as index ranges (searchd/filters.py writes them so), covering, so no table row is read;
  min/max dates and distinct cameras/types become index seeks.
- image_tags (tag_id, state, image_id): a tag filter reads its image ids from the index alone.
- folders: each folder that holds OK images, with their count, kept by triggers on images (the
  facet list read every page load used to take the dirname of every path in Python). The triggers
  fire for every writer, including raw SQL, so the table cannot drift from the rows.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def dirname(path: str) -> str:
    """SQL for os.path.dirname of a POSIX path: rtrim drops the trailing characters that are not '/'
    (the set of a path's characters minus '/'), substr the '/' itself; a file at '/' stays '/'."""
    head = f"rtrim({path}, replace({path}, '/', ''))"
    return f"CASE WHEN length({head}) <= 1 THEN {head} ELSE substr({head}, 1, length({head}) - 1) END"


def _count(sign: str, row: str) -> str:
    folder = dirname(f"{row}.path")
    if sign == "+":
        return (
            f"INSERT INTO folders (path, images) SELECT {folder}, 1 WHERE {row}.status = 'ok' "
            "ON CONFLICT (path) DO UPDATE SET images = images + 1;"
        )
    return (
        f"UPDATE folders SET images = images - 1 WHERE {row}.status = 'ok' AND path = {folder};"
        f" DELETE FROM folders WHERE path = {folder} AND images <= 0;"
    )


TRIGGERS = {
    "images_folders_insert": f"AFTER INSERT ON images BEGIN {_count('+', 'NEW')} END",
    "images_folders_delete": f"AFTER DELETE ON images BEGIN {_count('-', 'OLD')} END",
    "images_folders_update": (
        f"AFTER UPDATE OF path, status ON images BEGIN {_count('-', 'OLD')} {_count('+', 'NEW')} END"
    ),
}


def upgrade() -> None:
    op.create_table(
        "folders",
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("images", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("path"),
    )
    op.execute(
        f"INSERT INTO folders (path, images) SELECT {dirname('path')}, count(*) FROM images"
        " WHERE status = 'ok' GROUP BY 1"
    )
    for name, body in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")
    # Plain CREATE INDEX (no batch mode: that would copy the images table, triggers lost).
    op.create_index("ix_images_status_path", "images", ["status", "path"])
    op.create_index("ix_images_status_camera", "images", ["status", "camera"])
    op.create_index("ix_images_status_format", "images", ["status", "format"])
    op.create_index("ix_images_status_taken_mtime", "images", ["status", "taken_at", "mtime"])
    op.drop_index("ix_image_tags_tag_state", "image_tags")
    op.create_index("ix_image_tags_tag_state_image", "image_tags", ["tag_id", "state", "image_id"])


def downgrade() -> None:
    op.drop_index("ix_image_tags_tag_state_image", "image_tags")
    op.create_index("ix_image_tags_tag_state", "image_tags", ["tag_id", "state"])
    for name in ("status_path", "status_camera", "status_format", "status_taken_mtime"):
        op.drop_index(f"ix_images_{name}", "images")
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("folders")
