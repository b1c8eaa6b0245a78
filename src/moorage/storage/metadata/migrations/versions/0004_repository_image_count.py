"""repository image count: the image limit without counting every image

A manifest PUT that adds an image checks the repository's image limit. Counting the
repository's images took time in proportion to their number (at 20,000 images, more than the
rest of the PUT); the count is now a column of the repository, kept by the statements that
insert and delete images. This revision adds it and fills it in.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 06:10:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('repositories', schema=None) as batch_op:
        batch_op.add_column(sa.Column('image_count', sa.Integer(), server_default='0',
                                      nullable=False))
    op.execute("UPDATE repositories SET image_count ="
               " (SELECT count(*) FROM images WHERE images.repository_id = repositories.id)")


def downgrade() -> None:
    with op.batch_alter_table('repositories', schema=None) as batch_op:
        batch_op.drop_column('image_count')
