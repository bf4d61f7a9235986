"""add post status enum

Revision ID: c7de05f4782e
Revises: f38af14302f2
Create Date: 2026-11-22 00:29:20.560023

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = 'c7de05f4782e'
down_revision = 'f38af14302f2'
branch_labels = None
depends_on = None


post_status = sa.Enum("draft", "published", "archived", name="post_status")


def upgrade():
    # CREATE TYPE on PostgreSQL (add_column does not do it); a no-op on other databases.
    post_status.create(op.get_bind(), checkfirst=True)
    with op.batch_alter_table("posts") as batch_op:
        batch_op.add_column(
            sa.Column("status", post_status, server_default="draft", nullable=False)
        )


def downgrade():
    with op.batch_alter_table("posts") as batch_op:
        batch_op.drop_column("status")
    # DROP TYPE on PostgreSQL, which keeps the type after the column is gone.
    post_status.drop(op.get_bind(), checkfirst=True)
