"""Moorage's HTTP edge on uvicorn (httptools, uvloop): the settings and the extensions that make
uvicorn fit a registry.

- :class:`BoundedHeadersProtocol`: httptools sets no limit on the size of a request's head, and
  joins header pieces by repeated concatenation, so one client sending a header of a hundred
  MiB holds a worker for seconds and its memory for good. Heads longer than
  :data:`MAX_HEAD_BYTES` are refused with 431 and the connection closed.
- :class:`Supervisor`: with uvicorn's worker supervisor the workers race to accept on one
  shared listening socket, and the one that has just answered tends to win, so a few busy
  connections can all land on one worker while the other idles. Moorage's supervisor accepts
  every connection itself and hands it to the worker holding the fewest (:class:`HandedServer`).
  It also closes its listening socket as soon as it is told to stop (uvicorn's keeps it open
  until every worker has exited, so connections made then wait unanswered and are reset), so
  they are refused at once (a load balancer moves on) while the workers finish their requests.
- :class:`PersistentHttp10Cycle`: uvicorn closes every HTTP/1.0 connection after one answer,
  even when the client asks to keep it (``Connection: keep-alive``, RFC 9112 Appendix C.2.2),
  as ApacheBench and older proxies do; Moorage keeps such a connection open when the answer's
  end is known without closing (a Content-Length, or no body), and says so in the answer.
- :class:`BodyPieces`: uvicorn gathers a request body's pieces by copying each onto the end of
  a ``bytearray`` and copies that again for the application; Moorage keeps the pieces and
  joins them once (a lone piece is handed over as it is).
- :func:`buffer_request_bodies`: uvicorn stops reading a connection once 64 KiB of a request
  body waits for the application; Moorage lets it read :data:`BODY_BUFFER_BYTES` ahead, so a
  large push arrives in pieces of up to about that size (fewer ``receive()`` calls per byte).
"""

from __future__ import annotations

import asyncio
import errno
import selectors
import signal
import socket
import sys
import threading
import time
from typing import Any

import structlog
import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http import h11_impl, httptools_impl
from uvicorn.supervisors import multiprocess
from uvicorn.supervisors.multiprocess import Multiprocess

# Longest request line plus headers accepted, in bytes: Go's net/http default, which CNCF
# Distribution serves with.
MAX_HEAD_BYTES = 1024 * 1024
BODY_BUFFER_BYTES = 1024 * 1024
# Request body pieces shorter than this are gathered in one buffer (BodyPieces), in bytes.
SMALL_PIECE_BYTES = 16 * 1024
# How long a refused connection is read (and what arrives dropped) before it is closed, seconds.
LINGER_SECONDS = 5
# How long an idle client connection stays open (seconds): longer than an AWS load balancer's
# default idle timeout (60 s), so the balancer, not Moorage, closes idle connections.
KEEP_ALIVE_SECONDS = 75

_HEAD_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
                   b"content-length: 33\r\nconnection: close\r\n\r\nRequest header fields too large\r\n")

log = structlog.get_logger("moorage")


class BoundedHeadersProtocol(httptools_impl.HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing request heads longer than :data:`MAX_HEAD_BYTES`
    (HTTP 431, RFC 6585 §5) before parsing them further; the connection is then closed.

    What is bounded is every stretch of a request that is not body: the request line and
    headers, and a chunked body's trailers (counted from each chunk's size line until its data
    begins, so the last chunk's trailers count). While such a stretch is being received the
    parser is given at most the bytes still allowed. A refusal while an earlier response of the
    connection is still being sent waits for that response to end.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0  # bytes of the current non-body stretch given to the parser
        self._in_head = True
        self._refused = False
        self._refuse_after_response = False

    def data_received(self, data: bytes) -> None:
        while data and not self._refused and not self.transport.is_closing():
            if not self._in_head:
                super().data_received(data)  # a new stretch beginning in it: at most one read
                return
            allowed = MAX_HEAD_BYTES - self._head_bytes
            if allowed <= 0:
                self._refuse_head()
                return
            piece, data = data[:allowed], data[allowed:]
            self._head_bytes += len(piece)
            super().data_received(piece)

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes = False, 0
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is previous or self.parser.get_http_version() != "1.0":
            return
        # RFC 9110 §10.1.1: a 100-continue expectation from an HTTP/1.0 client is ignored.
        self.cycle.waiting_for_100_continue = False
        if _http10_asks_to_keep_alive(self.headers):
            self.cycle.__class__ = PersistentHttp10Cycle
            self.cycle.keep_alive = True

    def on_chunk_header(self) -> None:
        self._in_head, self._head_bytes = True, 0  # a last chunk's trailers may follow

    def on_body(self, body: bytes) -> None:
        """uvicorn's ``on_body``, keeping the received pieces in a :class:`BodyPieces` instead
        of copying each onto the end of one ``bytearray`` (which uvicorn then copies again
        into the ``bytes`` it hands the application)."""
        self._in_head = False
        cycle = self.cycle
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        pieces = cycle.body
        if type(pieces) is not BodyPieces:  # uvicorn's receive() starts a bytearray each time
            cycle.body = pieces = BodyPieces(pieces)
        pieces.append(body)
        if len(pieces) > httptools_impl.HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.message_event.set()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0

    def on_response_complete(self) -> None:
        if self._refuse_after_response:
            self.server_state.total_requests += 1
            self._send_refusal()
            return
        super().on_response_complete()

    def _refuse_head(self) -> None:
        log.warning("http.head_too_large", limit_bytes=MAX_HEAD_BYTES,
                    client=":".join(map(str, self.client or ())))
        self._refused = True  # read nothing more of this connection
        self.transport.pause_reading()
        if self.cycle is not None and not self.cycle.response_complete:
            self._refuse_after_response = True  # an earlier request is still being answered
        else:
            self._send_refusal()

    def _send_refusal(self) -> None:
        """Answer 431, then close gracefully: end the sending side once everything queued is
        sent, and read and drop what the client still sends until it closes (at most
        :data:`LINGER_SECONDS`). Closing at once with unread data would make the kernel reset
        the connection, and the client could lose the answers not yet delivered to it."""
        self.transport.write(_HEAD_TOO_LARGE)
        self.transport.write_eof()
        self.transport.resume_reading()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


class BodyPieces:
    """The pieces of a request body received since the application last asked for some, in
    the place of uvicorn's ``bytearray``: uvicorn hands the application ``bytes(pieces)``, which
    is the one piece itself when there is one (no copy) and one joined copy otherwise.

    Pieces shorter than :data:`SMALL_PIECE_BYTES` are copied onto a ``bytearray`` at the end,
    as uvicorn does with every piece, so a body sent in tiny chunks costs its bytes in memory,
    not an object per chunk (at most two objects per :data:`SMALL_PIECE_BYTES` held).

    Only what uvicorn's ``receive`` and ``on_body`` do with the buffer is supported: ``len``
    and ``bytes``. Streamed pushes of 128 MiB: 6–9 % faster and 0.08 CPU-s/GB cheaper than
    with uvicorn's buffer, in same-machine A/B runs (docs/performance.md, "Large pushes").
    """

    __slots__ = ("pieces", "size", "_tail")

    def __init__(self, start: bytes | bytearray = b"") -> None:
        self.pieces: list[bytes | bytearray] = []
        self.size = 0
        self._tail: bytearray | None = None  # the last piece, when small pieces gather there
        if start:
            self.append(bytes(start))

    def append(self, piece: bytes) -> None:
        if len(piece) < SMALL_PIECE_BYTES:
            if self._tail is None:
                self._tail = bytearray()
                self.pieces.append(self._tail)
            self._tail += piece
        else:
            self.pieces.append(piece)
            self._tail = None
        self.size += len(piece)

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        if len(self.pieces) == 1 and type(self.pieces[0]) is bytes:
            return self.pieces[0]
        return b"".join(self.pieces)


class PersistentHttp10Cycle(httptools_impl.RequestResponseCycle):
    """One request and its answer on an HTTP/1.0 connection whose client asked to keep it open
    (``Connection: keep-alive``; RFC 9112 Appendix C.2.2, RFC 2068 §19.7.1).

    An HTTP/1.0 client knows where an answer ends only by its Content-Length or by the
    connection closing (it cannot read chunked bodies). So an answer with a Content-Length, or
    with no body (HEAD, 204, 304), carries ``Connection: keep-alive`` and the connection stays
    open for the next request (until :data:`KEEP_ALIVE_SECONDS` idle); any other answer, or
    one the application marks ``Connection: close``, closes it as before.
    """

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start" and not self.response_started:
            headers = list(message.get("headers", ()))
            names = {name.lower() for name, _ in headers}
            body_end_known = (b"content-length" in names or self.scope["method"] == "HEAD"
                              or message["status"] in (204, 304))
            if not body_end_known:
                self.keep_alive = False  # uvicorn answers "connection: close" and closes
            elif b"connection" not in names and self.keep_alive:
                headers.append((b"connection", b"keep-alive"))
            message = {**message, "headers": headers}
        await super().send(message)


def _http10_asks_to_keep_alive(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether an HTTP/1.0 request may keep its connection: a ``keep-alive`` connection
    option and no ``close`` (RFC 9112 §9.3, Appendix C.2.2), and no Transfer-Encoding (an
    HTTP/1.0 message with one has faulty framing; the connection must close after it, RFC 9112
    §6.1). ``headers``: the request's (lower-case name, value) pairs."""
    options: set[bytes] = set()
    for name, value in headers:
        if name == b"transfer-encoding":
            return False
        if name == b"connection":
            options.update(option.strip().lower() for option in value.split(b","))
    return b"keep-alive" in options and b"close" not in options


# What the supervisor sends a worker with each connection's descriptor, one byte.
HANDED = b"c"
# What a worker tells its supervisor over its channel, one byte each.
READY = b"r"  # started (lifespan done): hand me connections
CLOSED = b"."  # one connection handed to me has closed
STOPPING = b"s"  # shutting down: hand me nothing more (answered by ending the channel)
# How long a stopping worker waits for its supervisor to end the channel, seconds.
HANDED_DRAIN_SECONDS = 2.0
# send_fds errors that mean the worker is gone (others: try the next worker).
_WORKER_GONE = {errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.EBADF}

# How long a stopping worker waits for the first request of connections handed to it just
# before (uvicorn's shutdown closes a connection that has not sent one), seconds.
FIRST_REQUEST_WAIT_SECONDS = 1.0

# Set in a worker process that receives its connections from the supervisor (HandedServer):
# called when one of them closes, so the supervisor can count each worker's connections.
_connection_closed: Any = None


class HandedConnectionsProtocol(BoundedHeadersProtocol):
    """:class:`BoundedHeadersProtocol` that tells the supervisor when its connection closes."""

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if _connection_closed is not None:
            _connection_closed()


class HandedServer(uvicorn.Server):
    """A worker's uvicorn server that serves the connections its supervisor accepted and handed
    over a Unix socket (``SCM_RIGHTS``), instead of accepting from a shared listening socket.

    It tells the supervisor :data:`READY` once started, :data:`CLOSED` for each connection
    that closes and :data:`STOPPING` when its shutdown begins. The supervisor answers STOPPING
    by ending its side of the channel, so everything handed before is read first; when the
    channel ends otherwise (the supervisor died), the worker shuts down."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
        super().__init__(config)
        self.channel = channel
        self._channel_ended: asyncio.Event | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        global _connection_closed
        await super().startup(sockets=[])  # the lifespan; no listening socket
        self._channel_ended = asyncio.Event()
        if self.should_exit:  # told to stop while starting
            self._channel_ended.set()
            return
        loop = asyncio.get_running_loop()
        self.channel.setblocking(False)
        _connection_closed = lambda: self._tell(CLOSED)  # noqa: E731
        loop.add_reader(self.channel.fileno(), self._receive, loop)
        self._tell(READY)

    def _tell(self, message: bytes) -> None:
        try:
            self.channel.send(message)
        except OSError:  # the supervisor is gone, or the channel is full: counts drift
            pass

    def _receive(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            data, fds, _flags, _address = socket.recv_fds(self.channel, 64, 64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, fds = b"", []
        if not data:  # STOPPING acknowledged, or the supervisor is gone: nothing more will come
            loop.remove_reader(self.channel.fileno())
            self.should_exit = True
            assert self._channel_ended is not None
            self._channel_ended.set()
            return
        for _lost in range(data.count(HANDED) - len(fds)):  # descriptors the kernel dropped
            log.warning("http.handed_connection_lost", reason="no descriptor left")
            self._tell(CLOSED)
        for fd in fds:  # served even once shutting down: the shutdown waits for their requests
            connection = socket.socket(fileno=fd)
            connection.setblocking(False)
            loop.create_task(self._serve_connection(loop, connection))

    async def _serve_connection(self, loop: asyncio.AbstractEventLoop,
                                connection: socket.socket) -> None:
        try:
            await loop.connect_accepted_socket(self._protocol, connection)
        except Exception:  # noqa: BLE001 (the connection could not be set up: it counts as closed)
            log.warning("http.handed_connection_failed", exc_info=True)
            connection.close()
            self._tell(CLOSED)

    def _protocol(self) -> asyncio.Protocol:
        return self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Tell the supervisor to hand nothing more and take every connection it handed before
        (until it ends the channel, at most :data:`HANDED_DRAIN_SECONDS`), let the newest of
        them send their first request (at most :data:`FIRST_REQUEST_WAIT_SECONDS`), then shut
        down as uvicorn does: requests in flight finish, idle connections close."""
        loop = asyncio.get_running_loop()
        if self._channel_ended is not None and not self._channel_ended.is_set():
            self._tell(STOPPING)
            try:
                await asyncio.wait_for(self._channel_ended.wait(), HANDED_DRAIN_SECONDS)
            except asyncio.TimeoutError:
                log.warning("http.supervisor_did_not_answer_stopping")
                loop.remove_reader(self.channel.fileno())
        deadline = loop.time() + FIRST_REQUEST_WAIT_SECONDS
        while self._awaiting_first_request() and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await super().shutdown(sockets=[])

    def _awaiting_first_request(self) -> bool:
        """Whether a connection has not sent its first request head yet (uvicorn's protocol
        has no request cycle until then)."""
        return any(connection.cycle is None for connection in self.server_state.connections)


class HandedProcess(multiprocess.Process):
    """uvicorn's worker process, running a :class:`HandedServer` on ``channel``."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
        super().__init__(config, [channel])
        self._channel: socket.socket | None = channel

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_channel"] = None  # the child gets it as the target's argument
        return state

    def start(self) -> None:
        """Start the process, then close this process's copy of the child's channel end (the
        child received a duplicate while starting)."""
        super().start()
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    @property
    def server(self) -> uvicorn.Server:
        """The worker's server (in the worker process; uvicorn's health check reads it)."""
        assert self._server is not None
        return self._server

    def target(self, sockets: list[socket.socket] | None = None) -> None:  # pragma: no cover
        assert sockets, "the channel"
        self._server = HandedServer(self.config, sockets[0])
        threading.Thread(target=self.always_pong, daemon=True).start()
        self._server.run()


class Supervisor(Multiprocess):
    """uvicorn's worker supervisor that accepts connections itself and hands each to the
    ready worker serving the fewest, closing its listening socket first when told to stop
    (SIGTERM, SIGINT); the workers finish their connections in their graceful shutdown.

    With one shared listening socket the workers race to accept, and the one that has just
    answered tends to win: 8 connections opened one after another could all land on one
    worker of two, which then set the rate while the other idled (docs/performance.md).
    Each connection stays with the worker it was handed to. A worker is handed connections
    from its :data:`READY` until its :data:`STOPPING` (or its exit); while no worker is ready
    (at start, or all restarting) connections wait in the listening socket's backlog.
    """

    def __init__(self, config: uvicorn.Config, listener: socket.socket) -> None:
        super().__init__(config, sockets=[listener])
        self.listener = listener
        listener.listen(config.backlog)
        listener.setblocking(False)
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, int] = {}  # our channel end → connections handed
        self._ready: set[socket.socket] = set()  # channels of workers ready and not stopping
        self._listening = False  # the listener is registered with the selector
        self._stopped = False
        self._selector = selectors.DefaultSelector()
        self._original_process = multiprocess.Process
        supervisor = self

        def new_process(config: uvicorn.Config, sockets: list[socket.socket]) -> HandedProcess:
            return supervisor._new_worker(config)

        multiprocess.Process = new_process  # type: ignore[misc,assignment]  # uvicorn's restarts too
        threading.Thread(target=self._hand_over, name="moorage-accept", daemon=True).start()

    def run(self) -> None:
        try:
            super().run()
        finally:
            multiprocess.Process = self._original_process  # type: ignore[misc]

    def _new_worker(self, config: uvicorn.Config) -> HandedProcess:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setblocking(False)
        process = HandedProcess(config, theirs)
        with self._lock:
            self._connections[ours] = 0
        self._selector.register(ours, selectors.EVENT_READ)
        return process

    def _hand_over(self) -> None:
        try:
            while not self.should_exit.is_set():
                try:
                    events = self._selector.select(timeout=0.5)
                    for key, _events in events:
                        if key.fileobj is self.listener:
                            self._accept()
                        else:
                            self._read_channel(key.fileobj)  # type: ignore[arg-type]
                    self._listen_while_a_worker_is_ready()
                except Exception:  # noqa: BLE001 (never let the accept thread die)
                    if self.should_exit.is_set():
                        return
                    log.exception("http.accept_thread_error")
                    time.sleep(0.1)
        finally:  # stopping: end every channel, so stopping workers need not wait
            with self._lock:
                channels = list(self._connections)
            for channel in channels:
                self._end_channel(channel)

    @staticmethod
    def _end_channel(channel: socket.socket) -> None:
        try:
            channel.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _listen_while_a_worker_is_ready(self) -> None:
        with self._lock:
            wanted = bool(self._ready) and not self._stopped
            if wanted == self._listening:
                return
            try:
                if wanted:
                    self._selector.register(self.listener, selectors.EVENT_READ)
                else:
                    self._selector.unregister(self.listener)
            except (KeyError, ValueError, OSError):
                return
            self._listening = wanted

    def _accept(self) -> None:
        with self._lock:
            candidates = sorted(self._ready, key=self._connections.__getitem__)
        if not candidates:  # the connection waits in the backlog for a ready worker
            return
        try:
            connection, _address = self.listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError:  # closed: stopping
            return
        with connection:
            for channel in candidates:
                try:
                    socket.send_fds(channel, [HANDED], [connection.fileno()])
                except BlockingIOError:  # that worker's channel is full: try the next
                    continue
                except OSError as error:
                    if error.errno in _WORKER_GONE:
                        self._forget(channel)
                    else:
                        log.warning("http.hand_off_failed", error=str(error))
                    continue
                with self._lock:
                    if channel in self._connections:
                        self._connections[channel] += 1
                return
            log.warning("http.connection_dropped", reason="no worker could take it")

    def _read_channel(self, channel: socket.socket) -> None:
        try:
            data = channel.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the worker exited
            self._forget(channel)
            return
        with self._lock:
            if channel not in self._connections:
                return
            self._connections[channel] = max(0, self._connections[channel] - data.count(CLOSED))
            stopping = STOPPING in data
            if stopping:
                self._ready.discard(channel)
            elif READY in data:
                self._ready.add(channel)
        if stopping:  # nothing more will be sent on it: say so, after all sent before
            self._end_channel(channel)

    def _forget(self, channel: socket.socket) -> None:
        with self._lock:
            self._connections.pop(channel, None)
            self._ready.discard(channel)
        try:
            self._selector.unregister(channel)
        except (KeyError, ValueError):
            pass
        channel.close()

    def terminate_all(self) -> None:
        """Stop listening, then stop the workers (also when uvicorn stops on its own, e.g.
        a worker that could not start)."""
        self._stop_listening()
        super().terminate_all()

    def handle_term(self) -> None:
        self._stop_listening()
        super().handle_term()

    def handle_int(self) -> None:
        self._stop_listening()
        super().handle_int()

    def _stop_listening(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            if self._listening:
                try:
                    self._selector.unregister(self.listener)
                except (KeyError, ValueError):
                    pass
                self._listening = False
        self.listener.close()


def buffer_request_bodies() -> None:
    """Let uvicorn's HTTP/1 protocols read :data:`BODY_BUFFER_BYTES` of a request body ahead of
    the application (``HIGH_WATER_LIMIT``, a module setting of each protocol that it reads on
    every body piece). Called in every worker process."""
    for protocol in (httptools_impl, h11_impl):
        if not hasattr(protocol, "HIGH_WATER_LIMIT"):  # a uvicorn that reads bodies otherwise
            log.warning("uvicorn body buffer not set", module=protocol.__name__)
            continue
        protocol.HIGH_WATER_LIMIT = BODY_BUFFER_BYTES


def serve(app_factory: str, host: str, port: int, workers: int, graceful_seconds: float) -> None:
    """Serve the ASGI app built by ``app_factory`` (``module:function``) on ``host:port`` with
    ``workers`` processes (one: in this process) until SIGTERM or SIGINT; requests in flight
    get ``graceful_seconds`` to finish.

    Raises:
        SystemExit: with uvicorn's startup-failure status (3) when the app (or, with workers,
            one worker) cannot start.
    """
    config = uvicorn.Config(
        app_factory, factory=True, host=host, port=port, workers=workers,
        http=HandedConnectionsProtocol if workers > 1 else BoundedHeadersProtocol, ws="none",
        log_config=None, log_level="warning", access_log=False,
        server_header=False, proxy_headers=False, timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=graceful_seconds)
    if workers > 1:
        supervisor = Supervisor(config, config.bind_socket())
        supervisor.run()
        if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
            raise SystemExit(STARTUP_FAILURE)
        return
    # One process: uvicorn finishes the requests in flight, then re-raises the signal it caught
    # (SIGINT as KeyboardInterrupt); either way this process then exits with status 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = uvicorn.Server(config)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)
