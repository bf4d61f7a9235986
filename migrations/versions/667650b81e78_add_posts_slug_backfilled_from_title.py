"""add posts.slug backfilled from title

Revision ID: 667650b81e78
Revises: 8ba14d6aa893
Create Date: 2026-11-22 00:29:19.617257

"""
import re
import unicodedata

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '667650b81e78'
down_revision = '8ba14d6aa893'
branch_labels = None
depends_on = None


# A lightweight table: only what this migration reads and writes, as of this revision.
posts = sa.table(
    "posts",
    sa.column("id", sa.Integer),
    sa.column("title", sa.String),
    sa.column("slug", sa.String),
)


def slugify(title):
    """'Émile's first post!' -> 'emiles-first-post'; leaves room for a '-N' suffix."""
    title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", title.lower().replace("'", "")).strip("-")[:190] or "post"


def upgrade():
    # 1. add the column as nullable, 2. fill it, 3. make it required and unique.
    with op.batch_alter_table("posts") as batch_op:
        batch_op.add_column(sa.Column("slug", sa.String(length=200), nullable=True))

    conn = op.get_bind()
    taken, rows = set(), []
    for post_id, title in conn.execute(sa.select(posts.c.id, posts.c.title).order_by(posts.c.id)):
        base = slug = slugify(title)
        n = 1
        while slug in taken:
            n += 1
            slug = f"{base}-{n}"
        taken.add(slug)
        rows.append({"post_id": post_id, "new_slug": slug})
    if rows:
        conn.execute(
            posts.update()
            .where(posts.c.id == sa.bindparam("post_id"))
            .values(slug=sa.bindparam("new_slug")),
            rows,
        )

    with op.batch_alter_table("posts") as batch_op:
        batch_op.alter_column("slug", existing_type=sa.String(length=200), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_posts_slug"), ["slug"])


def downgrade():
    # Slugs are derived from titles, so dropping them is the inverse: upgrading again
    # recomputes them (slugs edited by hand after this revision are lost).
    with op.batch_alter_table("posts") as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_posts_slug"), type_="unique")
        batch_op.drop_column("slug")
