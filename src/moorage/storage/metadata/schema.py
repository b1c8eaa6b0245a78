"""The metadata schema: SQLAlchemy 2 tables for everything but blob bytes.

Invariants are constraints: one repository name per registry; one digest per repository
(``images``); one image per tag (``tags`` primary key); one link per blob and repository.
A tag move is an UPDATE of one ``tags`` row inside the manifest's transaction.

Times are epoch seconds (float, UTC). Sizes are bytes.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of every metadata table."""


class Repository(Base):
    """An ECR repository (``CreateRepository``)."""

    __tablename__ = "repositories"
    __table_args__ = (UniqueConstraint("registry_id", "name", name="uq_repositories_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    registry_id: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[float] = mapped_column(Float)
    image_tag_mutability: Mapped[str] = mapped_column(String(32), default="MUTABLE")
    image_tag_mutability_exclusion_filters: Mapped[list | None] = mapped_column(JSON, nullable=True)
    scan_on_push: Mapped[bool] = mapped_column(Boolean, default=False)
    encryption_type: Mapped[str] = mapped_column(String(16), default="AES256")
    kms_key: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    repository_policy: Mapped[str | None] = mapped_column(Text, nullable=True)
    lifecycle_policy: Mapped[str | None] = mapped_column(Text, nullable=True)
    lifecycle_evaluated_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # How many images the repository holds (kept by the one statement that inserts images and
    # the one that deletes them): the image limit is checked without counting every image.
    image_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ResourceTag(Base):
    """A ``{Key, Value}`` tag of a repository (TagResource)."""

    __tablename__ = "resource_tags"

    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))
    position: Mapped[int] = mapped_column(Integer, default=0)


class Blob(Base):
    """A published, digest-verified blob in the blob store (registry-wide)."""

    __tablename__ = "blobs"

    digest: Mapped[str] = mapped_column(String(80), primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Float)


class RepositoryBlob(Base):
    """A blob made available in a repository (pushed or mounted there)."""

    __tablename__ = "repository_blobs"

    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    )
    digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest"), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float)


class Image(Base):
    """A manifest stored in a repository; the bytes are kept verbatim (max 4 MiB)."""

    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("repository_id", "digest", name="uq_images_digest"),
        # Referrers of a digest; only images with a subject are indexed (most have none).
        Index("ix_images_subject", "repository_id", "subject_digest",
              sqlite_where=text("subject_digest IS NOT NULL"),
              postgresql_where=text("subject_digest IS NOT NULL")),
        # DescribeImages pages: keyset order (pushed_at, digest) within a repository.
        Index("ix_images_pushed_at", "repository_id", "pushed_at", "digest"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(80))
    media_type: Mapped[str] = mapped_column(String(255))
    artifact_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    config_media_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    subject_digest: Mapped[str | None] = mapped_column(String(80), nullable=True)
    annotations: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    manifest_size_bytes: Mapped[int] = mapped_column(Integer)
    image_size_bytes: Mapped[int] = mapped_column(BigInteger)
    pushed_at: Mapped[float] = mapped_column(Float)
    last_pulled_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class ImageReference(Base):
    """What an image references: its config and layer blobs, or its child manifests.

    ``blob_digest`` repeats ``digest`` for blob references only, as a foreign key to ``blobs``:
    the database itself then refuses to delete a blob an image references (garbage collection
    relies on this, on SQLite and PostgreSQL alike).
    """

    __tablename__ = "image_references"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    digest: Mapped[str] = mapped_column(String(80), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # "blob" | "manifest"
    media_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    blob_digest: Mapped[str | None] = mapped_column(
        ForeignKey("blobs.digest"), nullable=True, index=True
    )


# Which images list a child manifest: only manifest references are indexed (blob references,
# most rows, are found by blob_digest). Queries must say ``kind = 'manifest'`` literally.
Index("ix_image_references_digest", ImageReference.digest,
      sqlite_where=text("kind = 'manifest'"), postgresql_where=text("kind = 'manifest'"))


class Tag(Base):
    """A tag naming exactly one image of a repository."""

    __tablename__ = "tags"
    __table_args__ = (
        # An image's tags in name order, read from the index alone (ListImages pages, and every
        # look-up of an image's tags).
        Index("ix_tags_image_name", "image_id", "name"),
    )

    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(300), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    updated_at: Mapped[float] = mapped_column(Float)


class UploadSession(Base):
    """A blob upload in progress; its bytes live in the blob store's upload area."""

    __tablename__ = "upload_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    # ECR UploadLayerPart bookkeeping: size of the last part, and whether a part other than the
    # last was smaller than the 5 MiB minimum (LayerPartTooSmallException at completion).
    last_part_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    small_part: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class LifecyclePreview(Base):
    """The latest lifecycle policy preview of a repository (StartLifecyclePolicyPreview)."""

    __tablename__ = "lifecycle_previews"

    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16))  # IN_PROGRESS | COMPLETE | FAILED
    policy_text: Mapped[str] = mapped_column(Text)
    started_at: Mapped[float] = mapped_column(Float)
    evaluated_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    results: Mapped[list | None] = mapped_column(JSON, nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Lease(Base):
    """A named lease held by one process until ``expires_at`` (periodic tasks across replicas)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[float] = mapped_column(Float)


class AccessKey(Base):
    """An access key pair of a principal (``arn:aws:iam::<account>:user/<user_name>``)."""

    __tablename__ = "access_keys"

    access_key_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    secret_access_key: Mapped[str] = mapped_column(Text)
    user_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
