"""create comments

Revision ID: f38af14302f2
Revises: 667650b81e78
Create Date: 2026-11-22 00:29:20.077459

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = 'f38af14302f2'
down_revision = '667650b81e78'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["post_id"], ["posts.id"], name=op.f("fk_comments_post_id_posts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_comments_author_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comments")),
    )
    op.create_index(op.f("ix_comments_post_id"), "comments", ["post_id"])


def downgrade():
    # Dropping the table drops its indexes. Dropping ix_comments_post_id first, as
    # autogenerate writes it, fails on MySQL/MariaDB: fk_comments_post_id_posts needs it (1553).
    op.drop_table("comments")
