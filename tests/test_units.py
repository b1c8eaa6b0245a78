"""Unit tests of small pure pieces: tokens, pagination tokens, settings, names, digests."""

from __future__ import annotations

import hashlib
import os

import pytest

from moorage.auth.tokens import TOKEN_LIFETIME_SECONDS, TokenIssuer, load_or_create_secret
from moorage.config import Settings, SettingsError, default_workers
from moorage.ecr.exceptions import EcrError
from moorage.ecr.pagination import PaginationTokens
from moorage.errors import AuthenticationFailed, InvalidDigest, InvalidRepositoryName, InvalidTag
from moorage.images.digests import parse_digest
from moorage.images.references import parse_repository_name, parse_tag
from moorage.registry.repositories import RepositorySettings
from moorage.registry.uploads import MAX_WRITE_CHUNKS
from moorage.services import build_services
from moorage.storage.blobs.filesystem import WRITEBACK_BYTES


def test_token_round_trip_and_expiry():
    issuer = TokenIssuer(b"secret")
    token, expires_at = issuer.issue("AKIA1", "alice", "123456789012", "us-east-1", 1000.0)
    assert expires_at == 1000 + TOKEN_LIFETIME_SECONDS
    assert ":" not in token
    claims = issuer.verify(token, 2000.0)
    assert (claims.access_key_id, claims.user_name, claims.account_id, claims.region) == (
        "AKIA1", "alice", "123456789012", "us-east-1")
    with pytest.raises(AuthenticationFailed, match="expired"):
        issuer.verify(token, expires_at)


@pytest.mark.parametrize("token", ["", ".", "abc", "abc.def", "e30.AAAA", "!!!.???"])
def test_malformed_tokens(token):
    with pytest.raises(AuthenticationFailed):
        TokenIssuer(b"secret").verify(token, 0)


def test_token_from_another_secret_or_altered():
    token, _ = TokenIssuer(b"one").issue("AKIA1", "alice", "123456789012", "us-east-1", 0)
    with pytest.raises(AuthenticationFailed):
        TokenIssuer(b"two").verify(token, 1)
    payload, _, mac = token.partition(".")
    with pytest.raises(AuthenticationFailed):
        TokenIssuer(b"one").verify(payload[:-2] + "AA." + mac, 1)


def test_token_secret_file(tmp_path):
    first = load_or_create_secret(tmp_path, None)
    assert (tmp_path / "token-secret").stat().st_mode & 0o777 == 0o600
    assert load_or_create_secret(tmp_path, None) == first
    assert load_or_create_secret(tmp_path, "configured") == b"configured"


def test_pagination_tokens():
    tokens = PaginationTokens(b"secret")
    token = tokens.encode("DescribeRepositories", "repo-b")
    assert tokens.decode("DescribeRepositories", token) == "repo-b"
    for bad in ["", "x", token + "x", token.replace(".", ".A"), "e30." + token.split(".")[1]]:
        with pytest.raises(EcrError) as excinfo:
            tokens.decode("DescribeRepositories", bad)
        assert excinfo.value.code == "InvalidParameterException"
    with pytest.raises(EcrError):
        tokens.decode("ListImages", token)
    with pytest.raises(EcrError):
        PaginationTokens(b"other").decode("DescribeRepositories", token)


def test_settings_validation(monkeypatch):
    monkeypatch.setenv("MOORAGE_ACCOUNT_ID", "123456789012")
    monkeypatch.setenv("MOORAGE_PORT", "6000")
    settings = Settings.from_environment(port=7000)
    assert settings.port == 7000 and settings.account_id == "123456789012"
    assert settings.effective_database_url.startswith("sqlite:///")
    with pytest.raises(SettingsError):
        Settings(account_id="abc")
    with pytest.raises(SettingsError):
        Settings(region="US_EAST")
    with pytest.raises(SettingsError):
        Settings(admin_access_key_id="AKIA")
    with pytest.raises(SettingsError):
        Settings(log_format="xml")
    with pytest.raises(SettingsError):
        Settings(log_level="loud")
    monkeypatch.setenv("MOORAGE_LOG_LEVEL", "DEBUG")
    assert Settings.from_environment().log_level == "debug"
    monkeypatch.setenv("MOORAGE_PORT", "x")
    with pytest.raises(SettingsError):
        Settings.from_environment()


def test_default_workers_are_two_per_cpu(monkeypatch):
    """Without MOORAGE_WORKERS a server runs two workers per CPU it may run on (its affinity,
    else the CPU count), at most 64 (2 when the CPU count is unknown)."""
    assert [default_workers(cpus) for cpus in (1, 2, 8, 32, 33, 80)] == [2, 4, 16, 64, 64, 64]
    monkeypatch.delenv("MOORAGE_WORKERS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 32)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert Settings.from_environment().workers == 6  # a cpuset of 3 on a 32-CPU host

    def no_affinity(pid):  # type: ignore[no-untyped-def]
        raise OSError("not supported")

    monkeypatch.setattr(os, "sched_getaffinity", no_affinity, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert Settings.from_environment().workers == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert Settings.from_environment().workers == 2
    monkeypatch.setenv("MOORAGE_WORKERS", "2")
    assert Settings.from_environment().workers == 2


@pytest.mark.parametrize("name", ["ab", "nginx", "project-a/nginx-web-app", "a__b", "a---b", "a.b_c/d-e", "0a"])
def test_valid_repository_names(name):
    assert parse_repository_name(name) == name


@pytest.mark.parametrize("name", ["a", "Nginx", "-x", "x-", "a//b", "a/", "/a", "a..b", "a_-b", "a___b", "a" * 257, ".."])
def test_invalid_repository_names(name):
    with pytest.raises(InvalidRepositoryName):
        parse_repository_name(name)


def test_tags_and_digests():
    assert parse_tag("v1.2_3-rc") == "v1.2_3-rc"
    for bad in ["", ".x", "-x", "a" * 129, "a/b", "a:b", "a b"]:
        with pytest.raises(InvalidTag):
            parse_tag(bad)
    good = "sha256:" + "a" * 64
    assert parse_digest(good) == good
    for bad in ["sha256:" + "A" * 64, "sha256:abc", "sha512:" + "a" * 128, "md5:00", "nodigest", "sha256:" + "g" * 64]:
        with pytest.raises(InvalidDigest):
            parse_digest(bad)


def test_upload_written_in_many_chunks_publishes_the_exact_bytes(tmp_path):
    """An append of many chunks (empty ones, more than one ``writev`` takes, past the writeback
    threshold) stores exactly their concatenation, and completes under its digest."""
    services = build_services(Settings(data_dir=tmp_path, account_id="123456789012"))
    services.repositories.create("chunks", RepositorySettings())
    chunks = [bytes([index % 251]) * (index % 7) for index in range(3 * MAX_WRITE_CHUNKS)]
    chunks.append(os.urandom(WRITEBACK_BYTES + 12345))
    content = b"".join(chunks)
    upload_id = services.uploads.start("chunks")
    with services.uploads.append("chunks", upload_id, 0) as append:
        append.write_chunks(chunks[:-1])
        append.write(chunks[-1])
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    assert services.uploads.complete("chunks", upload_id, digest) == (len(content), True)
    assert services.context.blobs.blob_path(digest).read_bytes() == content


DOWNLOAD_PIECES = """
import os, resource, sys
from concurrent.futures import ThreadPoolExecutor
from moorage.server import tune_allocator
if sys.argv[1] == "tuned":
    assert tune_allocator()
fd = os.open(sys.argv[2], os.O_RDONLY)
pool = ThreadPoolExecutor(8)

def rounds(count):  # four downloads, each holding two 2 MiB pieces read by worker threads
    downloads = [[b"", b""] for _ in range(4)]
    for _ in range(count):
        reads = [pool.submit(os.pread, fd, 2 * 1024 * 1024, 0) for _ in downloads]
        for pieces, read in zip(downloads, reads):
            pieces[:] = [pieces[1], read.result()]

rounds(30)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds(50)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_tuned_allocator_reuses_download_pieces(tmp_path):
    """Concurrent downloads' 2 MiB pieces, read by worker threads: with the allocator tuned
    (moorage.server.tune_allocator) they reuse freed memory; by default glibc keeps returning
    it to the kernel, which then faults in (zero-fills) fresh pages for the next pieces."""
    import subprocess
    import sys

    blob = tmp_path / "blob"
    blob.write_bytes(os.urandom(2 * 1024 * 1024))

    def page_faults(mode: str) -> int:
        run = subprocess.run([sys.executable, "-c", DOWNLOAD_PIECES, mode, str(blob)],
                             capture_output=True, text=True, check=True)
        return int(run.stdout)

    default, tuned = page_faults("default"), page_faults("tuned")
    assert default > 200 * 40  # 200 pieces of 512 pages
    assert tuned < default / 4


def test_uvicorn_reads_a_megabyte_of_body_ahead():
    """uvicorn's protocols read up to 1 MiB of a request body ahead of the application, not
    64 KiB (the setting moorage.server changes must still exist in the installed uvicorn)."""
    from uvicorn.protocols.http import h11_impl, httptools_impl

    from moorage.uvicorn_edge import BODY_BUFFER_BYTES, buffer_request_bodies

    assert httptools_impl.HIGH_WATER_LIMIT == h11_impl.HIGH_WATER_LIMIT == 64 * 1024
    try:
        buffer_request_bodies()
        assert httptools_impl.HIGH_WATER_LIMIT == h11_impl.HIGH_WATER_LIMIT == BODY_BUFFER_BYTES
    finally:
        httptools_impl.HIGH_WATER_LIMIT = h11_impl.HIGH_WATER_LIMIT = 64 * 1024


def test_request_body_pieces_reach_the_application_whole_and_uncopied():
    """The edge keeps a request body's received pieces as they are (``BodyPieces``): a lone
    large piece is handed over as the very object httptools made, several are joined once, and
    small pieces gather in one buffer (a body of tiny chunks holds a few objects, not one per
    chunk). Driven through uvicorn's own protocol with a chunked body arriving in many reads,
    some while the application waits and some while it is busy (reading then pauses past the
    body buffer limit and resumes), the application receives exactly the bytes sent."""
    import asyncio

    import uvicorn
    from uvicorn.protocols.http import httptools_impl
    from uvicorn.server import ServerState

    from moorage.uvicorn_edge import SMALL_PIECE_BYTES, BodyPieces, BoundedHeadersProtocol

    piece = b"p" * SMALL_PIECE_BYTES
    one = BodyPieces()
    one.append(piece)
    assert len(one) == SMALL_PIECE_BYTES and bytes(one) is piece
    one.append(piece.upper())
    assert len(one) == 2 * SMALL_PIECE_BYTES and bytes(one) == piece + piece.upper()
    several = BodyPieces(bytearray(b"ab"))
    for part in (b"cd", b"", piece, b"ef", b"gh"):
        several.append(part)
    assert len(several) == 8 + SMALL_PIECE_BYTES and bytes(several) == b"abcd" + piece + b"efgh"
    assert len(several.pieces) == 3  # "abcd", the large piece, "efgh"
    tiny = BodyPieces()
    for _ in range(100_000):
        tiny.append(b"x")
    assert len(tiny) == 100_000 and len(tiny.pieces) == 1 and bytes(tiny) == b"x" * 100_000

    class Transport(asyncio.Transport):
        def __init__(self) -> None:
            super().__init__()
            self.written, self.paused, self.resumed, self.closed = bytearray(), 0, 0, False

        def get_extra_info(self, name, default=None):  # type: ignore[no-untyped-def]
            return {"sockname": ("127.0.0.1", 5000), "peername": ("127.0.0.1", 40000)}.get(name, default)

        def write(self, data) -> None:  # type: ignore[no-untyped-def]
            self.written += data

        def is_closing(self) -> bool:
            return self.closed

        def close(self) -> None:
            self.closed = True

        def pause_reading(self) -> None:
            self.paused += 1

        def resume_reading(self) -> None:
            self.resumed += 1

    frames = [os.urandom(size) for size in (70_000, 1, 65_536, 300_000, 5, 7, 90_000)]
    wire = (b"PATCH /upload HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
            + b"".join(b"%x\r\n%b\r\n" % (len(f), f) for f in frames) + b"0\r\n\r\n")
    reads = [wire[start:start + 60_000] for start in range(0, len(wire), 60_000)]

    async def drive() -> tuple[list[bytes], Transport]:
        messages: list[bytes] = []
        finished = asyncio.Event()
        busy = asyncio.Event()

        async def app(scope, receive, send):  # type: ignore[no-untyped-def]
            while True:
                message = await receive()
                messages.append(message["body"])
                if len(messages) == 2:
                    await busy.wait()  # pieces gather meanwhile, past the buffer limit
                if not message.get("more_body"):
                    break
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            finished.set()

        config = uvicorn.Config(app, http=BoundedHeadersProtocol, lifespan="off", log_config=None)
        config.load()
        protocol = BoundedHeadersProtocol(config=config, server_state=ServerState(), app_state={},
                                          _loop=asyncio.get_running_loop())
        transport = Transport()
        protocol.connection_made(transport)
        for number, read in enumerate(reads):
            protocol.data_received(read)
            if number == 6:
                busy.set()
            if number < 3 or number >= 6:
                await asyncio.sleep(0.005)  # the application takes what has arrived
        await asyncio.wait_for(finished.wait(), 5)
        return messages, transport

    limit = httptools_impl.HIGH_WATER_LIMIT
    try:
        httptools_impl.HIGH_WATER_LIMIT = 200_000
        messages, transport = asyncio.run(drive())
    finally:
        httptools_impl.HIGH_WATER_LIMIT = limit
    assert b"".join(messages) == b"".join(frames)
    assert len(messages) >= 4  # the body came in several messages
    assert max(map(len, messages)) > 200_000  # some gathered while the application was busy
    assert transport.paused >= 1 and transport.resumed >= 1
    assert transport.written.startswith(b"HTTP/1.1 204 ")
