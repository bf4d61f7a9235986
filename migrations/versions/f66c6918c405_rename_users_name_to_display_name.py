"""rename users.name to display_name

Revision ID: f66c6918c405
Revises: 1d7354498673
Create Date: 2026-11-22 00:29:18.569971

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = 'f66c6918c405'
down_revision = '1d7354498673'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.alter_column(
            "name",
            new_column_name="display_name",
            existing_type=sa.String(length=120),  # MySQL's CHANGE COLUMN restates the type
            existing_nullable=True,
        )


def downgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.alter_column(
            "display_name",
            new_column_name="name",
            existing_type=sa.String(length=120),
            existing_nullable=True,
        )
