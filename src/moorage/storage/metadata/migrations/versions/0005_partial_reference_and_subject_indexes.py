"""partial indexes: only manifest references by digest, only images with a subject

``ix_image_references_digest`` is read only for references to child manifests (which indexes
list an image), and ``ix_images_subject`` only for images that have a subject (referrers).
Most rows are blob references and images without a subject; indexing only the rows those
look-ups can find makes every image put and delete write two index entries fewer per
reference and per image. Blob references are found by ``blob_digest``, whose index stays.
Both backends use a partial index when the query's condition implies the index's:
``kind = 'manifest'`` literally, and ``subject_digest = …`` / ``IN (…)`` imply ``IS NOT NULL``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 12:40:00
"""
from alembic import op
from sqlalchemy import text


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

MANIFEST_REFERENCES = "kind = 'manifest'"
WITH_SUBJECT = "subject_digest IS NOT NULL"


def upgrade() -> None:
    op.drop_index('ix_image_references_digest', table_name='image_references')
    op.create_index('ix_image_references_digest', 'image_references', ['digest'],
                    sqlite_where=text(MANIFEST_REFERENCES),
                    postgresql_where=text(MANIFEST_REFERENCES))
    op.drop_index('ix_images_subject', table_name='images')
    op.create_index('ix_images_subject', 'images', ['repository_id', 'subject_digest'],
                    sqlite_where=text(WITH_SUBJECT), postgresql_where=text(WITH_SUBJECT))


def downgrade() -> None:
    op.drop_index('ix_images_subject', table_name='images')
    op.create_index('ix_images_subject', 'images', ['repository_id', 'subject_digest'])
    op.drop_index('ix_image_references_digest', table_name='image_references')
    op.create_index('ix_image_references_digest', 'image_references', ['digest'])
