"""Manifest parsing and validation: bytes in, a :class:`Manifest` value out. No I/O.

Sources: OCI image-spec v1.1 (manifest.md, image-index.md, descriptor.md, annotations.md and
``schema/defs-descriptor.json``), OCI distribution-spec v1.1 §"Pushing manifests" and
§"Listing referrers", Docker Image Manifest V2 Schema 2 (image manifest and manifest list).

:func:`parse_manifest` is the only entry point. Whatever the bytes, it returns a
:class:`Manifest` or raises :class:`~moorage.errors.InvalidManifest` (OCI ``MANIFEST_INVALID``,
ECR ``InvalidParameterException``) or its subclass :class:`~moorage.errors.ManifestTooLarge`.
It never raises anything else, and the work it does is bounded by the 4 MiB input limit and
:data:`MAX_DESCRIPTORS`.

Whether the referenced blobs and child manifests exist is not checked here: that needs the
repository, and belongs to the registry domain (``ManifestReferencesMissing``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from moorage.errors import InvalidDigest, InvalidManifest, ManifestTooLarge
from moorage.images import media_types as mt
from moorage.images.digests import parse_digest, sha256_digest

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
"""Largest manifest accepted, in bytes (4 MiB: ECR's limit, and the size distribution-spec
§"Pushing manifests" says registries SHOULD accept at least)."""

MAX_DESCRIPTORS = 10_000
"""Most ``layers`` plus ``manifests`` entries one manifest may list."""

MAX_SIZE = 2**63 - 1
"""Largest descriptor ``size`` (image-spec descriptor.md: ``size`` is an int64)."""

# image-spec schema/defs-descriptor.json "mediaType" (RFC 6838 §4.2 restricted names).
_MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor (image-spec descriptor.md): what a manifest says about a blob or a
    child manifest.

    Attributes:
        media_type: ``mediaType``, an RFC 6838 ``type/subtype``.
        digest: ``digest``, ``sha256:<64 lowercase hex>`` (other algorithms are refused).
        size: ``size`` of the referenced content, in bytes (0 .. 2**63-1).
        artifact_type: ``artifactType`` or None (absent or empty string).
        annotations: ``annotations`` (string to string) or None when absent.
        platform: ``platform`` object verbatim (image-index.md; ``architecture`` and ``os``
            strings guaranteed) or None when absent.
        urls: ``urls`` from which the content may also be fetched, () when absent.
    """

    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    platform: dict | None = None
    urls: tuple[str, ...] = ()

    @property
    def is_non_distributable(self) -> bool:
        """True for a non-distributable (OCI) or foreign (Docker) layer that lists ``urls``:
        its content lives outside the registry and need not be pushed as a blob."""
        return bool(self.urls) and self.media_type in mt.NON_DISTRIBUTABLE_LAYER_MEDIA_TYPES


@dataclass(frozen=True)
class Manifest:
    """A validated manifest of one of :data:`~moorage.images.media_types.MANIFEST_MEDIA_TYPES`.

    Attributes:
        media_type: the resolved media type (see :func:`parse_manifest`).
        digest: ``sha256:<hex>`` of the exact bytes given, the manifest's identity.
        size: length of those bytes.
        config: the ``config`` descriptor of an image manifest; None for an index.
        layers: the ``layers`` of an image manifest, in order; () for an index.
        manifests: the children of an index or manifest list, in order; () for an image manifest.
        subject: the ``subject`` descriptor (OCI 1.1 referrers), or None. Always None for Docker
            media types, whose schemas have no such field.
        artifact_type: the manifest's own ``artifactType`` field, or None (absent, empty, or a
            Docker media type).
        annotations: the manifest's ``annotations`` (string to string), or None when absent.
    """

    media_type: str
    digest: str
    size: int
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None
    artifact_type: str | None
    annotations: dict[str, str] | None

    @property
    def is_index(self) -> bool:
        """True for an OCI image index or a Docker manifest list."""
        return self.media_type in mt.INDEX_MEDIA_TYPES

    @property
    def blob_references(self) -> tuple[Descriptor, ...]:
        """The descriptors that must exist as blobs in the repository before the manifest is
        accepted: ``config`` then ``layers`` in manifest order (duplicates kept), leaving out
        non-distributable / foreign layers that list ``urls``. () for an index. ``subject`` is
        never included: distribution-spec lets a manifest be pushed before its subject."""
        if self.config is None:
            return ()
        return (self.config,) + tuple(d for d in self.layers if not d.is_non_distributable)

    @property
    def effective_artifact_type(self) -> str | None:
        """The ``artifactType`` a referrers response lists for this manifest
        (distribution-spec §"Listing referrers"): ``artifactType`` when set, else the config's
        ``mediaType`` for an image manifest, else None (an index without ``artifactType``)."""
        if self.artifact_type:
            return self.artifact_type
        if self.config is not None:
            return self.config.media_type
        return None


def parse_manifest(content: bytes, content_type: str | None) -> Manifest:
    """Parse and validate the manifest ``content`` pushed with ``content_type``.

    The media type is resolved from ``content_type`` (parameters such as ``; charset=utf-8``
    stripped, lower-cased) unless it is absent or generic (``application/json``,
    ``application/octet-stream``, empty); then from the body's ``mediaType``; then by shape
    (``manifests`` → OCI index, ``config`` and ``layers`` → OCI image manifest). When both the
    header and ``mediaType`` are given they must be equal (distribution-spec §"Pushing
    manifests"). An image manifest must not carry ``manifests`` and an index must not carry
    ``config`` or ``layers`` (the manifest/index ambiguity of GHSA-77vh-xpmg-72qh).

    Args:
        content: the request body, kept verbatim: the digest is the sha256 of these bytes.
        content_type: the request's ``Content-Type`` header, or None.

    Returns:
        the validated :class:`Manifest`.

    Raises:
        ManifestTooLarge: ``len(content)`` > :data:`MAX_MANIFEST_BYTES` (checked first; the
            distribution edge may answer it 413 as distribution-spec allows).
        InvalidManifest: not UTF-8 JSON object; ``schemaVersion`` not the integer 2; media type
            unsupported (including Docker schema 1), undeterminable or contradicting
            ``mediaType``; a missing or malformed field or descriptor; more than
            :data:`MAX_DESCRIPTORS` descriptors; nesting too deep. Maps to OCI
            ``MANIFEST_INVALID`` (``ManifestTooLarge`` included unless the edge says otherwise).
    """
    if not isinstance(content, (bytes, bytearray, memoryview)):
        raise InvalidManifest("manifest content must be bytes")
    length = content.nbytes if isinstance(content, memoryview) else len(content)
    if length > MAX_MANIFEST_BYTES:
        raise ManifestTooLarge(
            f"manifest is {length} bytes, larger than the {MAX_MANIFEST_BYTES}-byte limit"
        )
    content = bytes(content)
    document = _load_json(content)
    media_type = _resolve_media_type(document, content_type)
    _check_schema_version(document)

    if media_type in mt.INDEX_MEDIA_TYPES:
        config, layers = None, ()
        manifests = _parse_index_body(document)
    else:
        config, layers = _parse_image_body(document)
        manifests = ()

    if media_type in mt.DOCKER_MEDIA_TYPES:
        subject, artifact_type = None, None
    else:
        subject = _optional_descriptor(document, "subject")
        artifact_type = _artifact_type(document.get("artifactType"), "artifactType")

    return Manifest(
        media_type=media_type,
        digest=sha256_digest(content),
        size=len(content),
        config=config,
        layers=layers,
        manifests=manifests,
        subject=subject,
        artifact_type=artifact_type,
        annotations=_annotations(document.get("annotations"), "annotations"),
    )


# --- document level ---------------------------------------------------------------------------


class _NotJson(ValueError):
    """A value Python's decoder accepts but JSON (RFC 8259) does not."""


def _reject_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON number")


def _load_json(content: bytes) -> dict[str, Any]:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidManifest(
            f"manifest is not valid UTF-8: {exc.reason} at byte {exc.start}"
        ) from None
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidManifest("manifest is not valid JSON: nested too deeply") from None
    except (json.JSONDecodeError, _NotJson) as exc:
        raise InvalidManifest(f"manifest is not valid JSON: {exc}") from None
    except ValueError:  # int() refusing a number of more than sys.get_int_max_str_digits()
        raise InvalidManifest("manifest is not valid JSON: a number has too many digits") from None
    if not isinstance(document, dict):
        raise InvalidManifest("manifest must be a JSON object")
    return document


def _normalise_content_type(content_type: str | None) -> str | None:
    if content_type is None:
        return None
    value = content_type.split(";", 1)[0].strip().lower()
    return None if value in mt.GENERIC_CONTENT_TYPES else value


def _resolve_media_type(document: dict[str, Any], content_type: str | None) -> str:
    header = _normalise_content_type(content_type)
    body = document.get("mediaType")
    if body is not None and not isinstance(body, str):
        raise InvalidManifest("manifest mediaType must be a string")
    if header is not None and body is not None and header != body:
        raise InvalidManifest(
            f"Content-Type '{_clip(header)}' does not match the manifest mediaType '{_clip(body)}'"
        )
    resolved = header or body
    if resolved is None:
        if "manifests" in document:
            resolved = mt.OCI_INDEX
        elif "config" in document and "layers" in document:
            resolved = mt.OCI_MANIFEST
        elif type(document.get("schemaVersion")) is int and document["schemaVersion"] == 1:
            raise InvalidManifest(
                "unsupported manifest media type: Docker schema 1 manifests are not supported"
            )
        else:
            raise InvalidManifest(
                "cannot determine the manifest media type: no Content-Type, no mediaType, "
                "and neither 'manifests' nor 'config' and 'layers'"
            )
    if resolved in mt.SCHEMA1_MEDIA_TYPES:
        raise InvalidManifest(
            f"unsupported manifest media type '{resolved}': Docker schema 1 manifests are not "
            "supported; push schema 2 or OCI"
        )
    if resolved not in mt.MANIFEST_MEDIA_TYPES:
        raise InvalidManifest(
            f"unsupported manifest media type '{_clip(resolved)}': expected one of "
            + ", ".join(sorted(mt.MANIFEST_MEDIA_TYPES))
        )
    return resolved


def _check_schema_version(document: dict[str, Any]) -> None:
    if "schemaVersion" not in document:
        raise InvalidManifest("manifest schemaVersion is missing; it must be 2")
    version = document["schemaVersion"]
    if type(version) is not int or version != 2:
        raise InvalidManifest(f"manifest schemaVersion must be the integer 2, not {_show(version)}")


def _parse_image_body(document: dict[str, Any]) -> tuple[Descriptor, tuple[Descriptor, ...]]:
    if "manifests" in document:
        raise InvalidManifest("an image manifest must not have a 'manifests' field")
    if "config" not in document:
        raise InvalidManifest("image manifest is missing the required 'config' descriptor")
    config = _descriptor(document["config"], "config")
    layers = _descriptor_list(document, "layers", "layer")
    return config, layers


def _parse_index_body(document: dict[str, Any]) -> tuple[Descriptor, ...]:
    for field in ("config", "layers"):
        if field in document:
            raise InvalidManifest(f"an index or manifest list must not have a '{field}' field")
    return _descriptor_list(document, "manifests", "manifest")


def _descriptor_list(document: dict[str, Any], field: str, item: str) -> tuple[Descriptor, ...]:
    if field not in document:
        raise InvalidManifest(f"manifest is missing the required '{field}' list")
    values = document[field]
    if not isinstance(values, list):
        raise InvalidManifest(f"manifest '{field}' must be a list")
    if len(values) > MAX_DESCRIPTORS:
        raise InvalidManifest(
            f"manifest lists {len(values)} {field}, more than the limit of {MAX_DESCRIPTORS}"
        )
    return tuple(_descriptor(value, f"{item} {i}") for i, value in enumerate(values))


def _optional_descriptor(document: dict[str, Any], field: str) -> Descriptor | None:
    value = document.get(field)
    return None if value is None else _descriptor(value, field)


# --- descriptors ------------------------------------------------------------------------------


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise InvalidManifest(f"{where}: descriptor must be a JSON object")

    if "mediaType" not in value:
        raise InvalidManifest(f"{where}: descriptor mediaType is missing")
    media_type = _media_type(value["mediaType"], f"{where}: mediaType")

    digest = value.get("digest")
    if not isinstance(digest, str):
        raise InvalidManifest(f"{where}: descriptor digest is missing or not a string")
    try:
        digest = parse_digest(digest)
    except InvalidDigest as exc:
        raise InvalidManifest(f"{where}: {exc.message}") from None

    if "size" not in value:
        raise InvalidManifest(f"{where}: descriptor size is missing")
    size = value["size"]
    if type(size) is not int or not 0 <= size <= MAX_SIZE:
        raise InvalidManifest(
            f"{where}: descriptor size must be an integer from 0 to {MAX_SIZE}, not {_show(size)}"
        )

    urls: tuple[str, ...] = ()
    if value.get("urls") is not None:
        raw_urls = value["urls"]
        if not isinstance(raw_urls, list):
            raise InvalidManifest(f"{where}: descriptor urls must be a list of strings")
        urls = tuple(_text(u, f"{where}: urls entry") for u in raw_urls)

    if value.get("data") is not None:
        _check_data(value["data"], digest, size, where)

    platform = value.get("platform")
    if platform is not None:
        platform = _platform(platform, f"{where}: platform")

    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        artifact_type=_artifact_type(value.get("artifactType"), f"{where}: artifactType"),
        annotations=_annotations(value.get("annotations"), f"{where}: annotations"),
        platform=platform,
        urls=urls,
    )


def _check_data(data: Any, digest: str, size: int, where: str) -> None:
    if not isinstance(data, str):
        raise InvalidManifest(f"{where}: descriptor data must be a base64 string")
    try:
        raw = base64.b64decode(data.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise InvalidManifest(f"{where}: descriptor data is not valid base64") from None
    if len(raw) != size:
        raise InvalidManifest(f"{where}: descriptor data is {len(raw)} bytes but size says {size}")
    if sha256_digest(raw) != digest:
        raise InvalidManifest(f"{where}: descriptor data does not match digest {digest}")


def _platform(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise InvalidManifest(f"{where} must be a JSON object")
    for field in ("architecture", "os"):
        if not isinstance(value.get(field), str):
            raise InvalidManifest(f"{where}: '{field}' is missing or not a string")
    for field in ("architecture", "os", "os.version", "variant"):
        if value.get(field) is not None:
            _text(value[field], f"{where}: {field}")
    for field in ("os.features", "features"):
        if value.get(field) is not None:
            if not isinstance(value[field], list):
                raise InvalidManifest(f"{where}: '{field}' must be a list of strings")
            for entry in value[field]:
                _text(entry, f"{where}: {field} entry")
    try:  # the object is kept verbatim: it must re-encode as UTF-8 (no lone surrogates)
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError, ValueError):
        raise InvalidManifest(f"{where} contains text that is not valid Unicode") from None
    return value


# --- scalars ----------------------------------------------------------------------------------


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidManifest(f"{where} must be a string, not {_show(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidManifest(f"{where} is not valid Unicode (unpaired surrogate)") from None
    return value


def _media_type(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _MEDIA_TYPE.fullmatch(value):
        raise InvalidManifest(f"{where} must be a media type 'type/subtype', not {_show(value)}")
    return value


def _artifact_type(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    return _media_type(value, where)


def _annotations(value: Any, where: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidManifest(f"{where} must be a map of string to string")
    for key, item in value.items():
        _text(key, f"{where} key")
        _text(item, f"{where} '{_clip(key)}'")
    return dict(value)


def _clip(text: str, limit: int = 100) -> str:
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + "..."


def _show(value: Any) -> str:
    """A short, safe rendering of a JSON value for an error message."""
    if isinstance(value, str):
        return "'" + _clip(value) + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        text = repr(value) if isinstance(value, float) or abs(value) < 10**30 else "a huge integer"
        return text
    return "a JSON array" if isinstance(value, list) else "a JSON object"
