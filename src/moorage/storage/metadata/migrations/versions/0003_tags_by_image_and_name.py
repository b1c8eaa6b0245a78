"""tags by image and name: a covering index for an image's tags in name order

ListImages pages join each image to its tags in (digest, tag) order; with ``(image_id, name)``
the tags come from the index alone, already ordered, so a page needs no table look-ups and no
sort. It replaces the ``(image_id)`` index, whose every use it also serves.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 05:40:00
"""
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tags', schema=None) as batch_op:
        batch_op.create_index('ix_tags_image_name', ['image_id', 'name'], unique=False)
        batch_op.drop_index('ix_tags_image_id')


def downgrade() -> None:
    with op.batch_alter_table('tags', schema=None) as batch_op:
        batch_op.create_index('ix_tags_image_id', ['image_id'], unique=False)
        batch_op.drop_index('ix_tags_image_name')
