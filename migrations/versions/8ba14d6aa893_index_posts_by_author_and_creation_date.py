"""index posts by author and creation date

Revision ID: 8ba14d6aa893
Revises: f66c6918c405
Create Date: 2026-11-22 00:29:19.094020

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '8ba14d6aa893'
down_revision = 'f66c6918c405'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("posts") as batch_op:
        batch_op.create_index(batch_op.f("ix_posts_author_id"), ["author_id"])
        batch_op.create_index(batch_op.f("ix_posts_created_at"), ["created_at"])


def downgrade():
    # Once ix_posts_author_id exists, MySQL/MariaDB discard the index InnoDB built for
    # fk_posts_author_id_users and refuse to drop ix_posts_author_id while the foreign key
    # needs it (errno 1553). So take the foreign key off around the index drop; re-adding it
    # makes InnoDB build its own index again.
    with op.batch_alter_table("posts") as batch_op:
        batch_op.drop_index(batch_op.f("ix_posts_created_at"))
        batch_op.drop_constraint(batch_op.f("fk_posts_author_id_users"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_posts_author_id"))
        batch_op.create_foreign_key(
            batch_op.f("fk_posts_author_id_users"),
            "users",
            ["author_id"],
            ["id"],
            ondelete="CASCADE",
        )
