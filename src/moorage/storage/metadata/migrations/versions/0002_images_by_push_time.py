"""images by push time: the keyset index of DescribeImages pages

DescribeImages lists a repository's images ordered by (pushed_at, digest) and continues after
the last key of the previous page; with this index each page reads only its own rows instead
of sorting every image of the repository.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 03:30:00
"""
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.create_index('ix_images_pushed_at', ['repository_id', 'pushed_at', 'digest'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index('ix_images_pushed_at')
