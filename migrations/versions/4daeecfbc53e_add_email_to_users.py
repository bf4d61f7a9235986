"""add email to users

Revision ID: 4daeecfbc53e
Revises: fe1c93f584b5
Create Date: 2026-11-22 00:29:16.430679

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '4daeecfbc53e'
down_revision = 'fe1c93f584b5'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=255), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_users_email"), ["email"])


def downgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_users_email"), type_="unique")
        batch_op.drop_column("email")
