"""Access keys and the principals they belong to (``arn:aws:iam::<account>:user/<name>``).

The bootstrap administrator key comes from ``MOORAGE_ADMIN_ACCESS_KEY_ID`` /
``MOORAGE_ADMIN_SECRET_ACCESS_KEY`` or is generated at first start and written to
``<data-dir>/credentials`` (AWS shared-credentials INI, mode 0600).
"""

from __future__ import annotations

import configparser
import os
import secrets
import string
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select

from moorage.storage.metadata.database import Database
from moorage.storage.metadata.schema import AccessKey

ADMIN_USER = "admin"
_KEY_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits + "/+"
_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class Principal:
    """Who made a request: the access key and the IAM-style user it belongs to."""

    access_key_id: str
    user_name: str
    account_id: str

    @property
    def arn(self) -> str:
        """``arn:aws:iam::<account>:user/<user_name>``."""
        return f"arn:aws:iam::{self.account_id}:user/{self.user_name}"


def generate_key_pair() -> tuple[str, str]:
    """A new (access key id, secret access key): ``AKIA`` + 16 characters, and 40 characters."""
    access_key_id = "AKIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
    return access_key_id, secret


class KeyStore:
    """Access keys in the metadata store, with a short-lived cache of secrets for SigV4."""

    def __init__(self, database: Database, account_id: str) -> None:
        self.database = database
        self.account_id = account_id
        self._cache: dict[str, tuple[float, AccessKey | None]] = {}

    def create(self, user_name: str, access_key_id: str | None = None, secret: str | None = None) -> AccessKey:
        """Create a key for ``user_name`` (generated unless both parts are given)."""
        if access_key_id is None or secret is None:
            access_key_id, secret = generate_key_pair()
        row = AccessKey(
            access_key_id=access_key_id, secret_access_key=secret, user_name=user_name,
            created_at=time.time(),
        )
        with self.database.transaction() as session:
            session.add(row)
        self._cache.pop(access_key_id, None)
        return row

    def list(self) -> list[AccessKey]:
        """Every key, oldest first."""
        with self.database.read() as session:
            return list(session.scalars(select(AccessKey).order_by(AccessKey.created_at)))

    def delete(self, access_key_id: str) -> bool:
        """Delete a key; True when it existed."""
        self._cache.pop(access_key_id, None)
        with self.database.transaction() as session:
            result = session.execute(delete(AccessKey).where(AccessKey.access_key_id == access_key_id))
            return bool(result.rowcount)

    def find(self, access_key_id: str) -> AccessKey | None:
        """The key with that id, or None; cached for a few seconds."""
        now = time.monotonic()
        cached = self._cache.get(access_key_id)
        if cached is not None and now - cached[0] < _CACHE_SECONDS:
            return cached[1]
        with self.database.read() as session:
            row = session.get(AccessKey, access_key_id)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[access_key_id] = (now, row)
        return row

    def secret_of(self, access_key_id: str) -> str | None:
        """The secret of an access key, or None when unknown (for SigV4)."""
        row = self.find(access_key_id)
        return row.secret_access_key if row is not None else None

    def principal(self, access_key_id: str) -> Principal | None:
        """The principal owning ``access_key_id``, or None when the key is unknown."""
        row = self.find(access_key_id)
        if row is None:
            return None
        return Principal(row.access_key_id, row.user_name, self.account_id)

    def ensure_admin(
        self, data_dir: Path, access_key_id: str | None, secret: str | None
    ) -> tuple[str, Path | None]:
        """Make sure an administrator key exists.

        With ``access_key_id``/``secret`` (from the environment) that key is used. Otherwise,
        on first start a key is generated and written to ``<data_dir>/credentials``.

        Returns:
            (admin access key id, path of the credentials file when one was written or exists).
        """
        credentials_path = data_dir / "credentials"
        if access_key_id and secret:
            existing = self.find(access_key_id)
            if existing is None:
                self.create(ADMIN_USER, access_key_id, secret)
            elif existing.secret_access_key != secret:
                with self.database.transaction() as session:
                    row = session.get(AccessKey, access_key_id)
                    assert row is not None
                    row.secret_access_key = secret
                self._cache.pop(access_key_id, None)
            return access_key_id, None
        with self.database.transaction() as session:
            admin = session.scalars(
                select(AccessKey).where(AccessKey.user_name == ADMIN_USER).order_by(AccessKey.created_at)
            ).first()
        if admin is None:
            admin = self.create(ADMIN_USER)
            write_credentials_file(credentials_path, admin.access_key_id, admin.secret_access_key)
        elif not credentials_path.exists():
            write_credentials_file(credentials_path, admin.access_key_id, admin.secret_access_key)
        return admin.access_key_id, credentials_path


def write_credentials_file(path: Path, access_key_id: str, secret: str) -> None:
    """Write an AWS shared-credentials file (``[default]`` profile) with mode 0600."""
    parser = configparser.ConfigParser()
    parser["default"] = {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        parser.write(handle)
    os.chmod(path, 0o600)
