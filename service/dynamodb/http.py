"""A keep-alive HTTP/1.1 client of one endpoint, for the DynamoDB calls on every request's path.

aiohttp's client spent about 90 µs of CPU on each call (request and response
objects, header multidicts, payload wrappers, a stream reader per answer)
against about 10 µs for the same request written on a kept-alive connection
and its answer parsed by llhttp: measured with the same body and headers, 16
calls at a time, against one local endpoint. On a new session's POST that was
a quarter of the server's CPU. Requests here are whole signed requests
(``service.dynamodb.wire``) and answers are small, so this client does only
that: a pool of connections to one endpoint, one request at a time on each,
answers parsed by ``httptools`` (llhttp, which also frames chunked bodies).

What it keeps of aiohttp's behaviour, and what the wire relies on:

- **TLS** for ``https`` endpoints, with the system's CAs and the host name verified;
- **at most ``limit`` connections**; more calls wait for one;
- **keep-alive**: a connection goes back to the pool after a whole answer unless
  the server asked to close it; one idle for ``keepalive`` seconds is never
  reused, and is closed by the next call;
- **timeouts**: connecting within ``connect_timeout``; once sent, the answer's
  bytes must keep coming, each within ``read_timeout`` of the last;
- **no answer is ever given to the wrong call**: a connection whose call was
  cancelled, failed or timed out is closed, never reused, and so is one that
  sends a byte while no call waits on it; interim (1xx) answers are skipped.

Answers must be framed by ``Content-Length`` or chunked, as DynamoDB's are: one
whose body runs to the connection's end is refused as ``ConnectionClosed``.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import httptools


class TransportError(Exception):
    """The call failed before a whole answer arrived."""


class ConnectFailed(TransportError):
    """Nothing accepted the connection (refused, unreachable, unresolvable, TLS refused)."""


class ConnectTimedOut(TransportError):
    """The connection was not made within the connect timeout."""


class ReadTimedOut(TransportError):
    """The answer stopped coming for longer than the read timeout."""


class ConnectionClosed(TransportError):
    """The connection ended, or sent something that is not HTTP, before the answer was whole."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes


@dataclass(slots=True)
class _Reading:
    """The answer being read on a connection."""

    done: asyncio.Future[Answer]
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: list[bytes] = field(default_factory=list)


class _Connection(asyncio.Protocol):
    """One kept-alive connection, carrying one request at a time."""

    def __init__(self, read_timeout: float) -> None:
        self._read_timeout = read_timeout
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._reading: _Reading | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self.progress = 0.0  # when a byte last arrived, or the request was sent
        self.idle_since = 0.0
        self.reusable = True

    # asyncio's protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._reading is None:  # nobody asked: whatever it is would be read as the next call's answer
            self._fail(ConnectionClosed("bytes from the server while no call waited"))
            return
        self.progress = time.monotonic()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionClosed(f"not an HTTP answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._fail(ConnectionClosed("the connection closed before the answer was whole"))

    # httptools' callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if self._reading is not None:
            self._reading.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if self._reading is not None:
            self._reading.status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self._reading is not None:
            self._reading.body.append(body)

    def on_message_complete(self) -> None:
        reading = self._reading
        if reading is None:  # an answer nobody asked for: the connection cannot be trusted
            self._fail(ConnectionClosed("an answer to no request"))
            return
        if reading.status < 200:  # interim (100 Continue): the answer follows
            reading.status, reading.headers, reading.body = 0, {}, []
            return
        self._reading = None
        self._stop_watchdog()
        self.reusable = self.reusable and self._parser.should_keep_alive()
        if not reading.done.done():
            reading.done.set_result(Answer(reading.status, reading.headers, b"".join(reading.body)))

    # the pool's side
    def send(self, request: bytes) -> asyncio.Future[Answer]:
        assert self._transport is not None
        assert self._reading is None
        loop = asyncio.get_running_loop()
        self._reading = _Reading(loop.create_future())
        self.progress = time.monotonic()
        self._transport.write(request)
        self._watchdog = loop.call_later(self._read_timeout, self._watch)
        return self._reading.done

    def close(self) -> None:
        self.reusable = False
        self._stop_watchdog()
        if self._transport is not None:
            self._transport.abort()

    def _watch(self) -> None:
        quiet = time.monotonic() - self.progress
        if quiet >= self._read_timeout:
            self._fail(ReadTimedOut(f"no byte of the answer for {quiet:.2f}s"))
        else:
            self._watchdog = asyncio.get_running_loop().call_later(self._read_timeout - quiet, self._watch)

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _fail(self, error: TransportError) -> None:
        reading, self._reading = self._reading, None
        self.close()
        if reading is not None and not reading.done.done():
            reading.done.set_exception(error)


class HttpPool:
    """POST requests to one endpoint (``http://host[:port]`` or ``https://...``) over kept-alive connections."""

    def __init__(self, url: str, *, limit: int, keepalive: float, connect_timeout: float, read_timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._path = parts.path or "/"
        self._keepalive = keepalive
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._slots = asyncio.Semaphore(limit)
        self._idle: collections.deque[_Connection] = collections.deque()
        self._open: set[_Connection] = set()
        self._closed = False

    async def post(self, headers: Mapping[str, str], body: bytes) -> Answer:
        """One request, and its whole answer; a ``TransportError`` if none came."""
        head = f"POST {self._path} HTTP/1.1\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = f"{head}Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body
        async with self._slots:
            if self._closed:
                raise ConnectionClosed("the pool is closed")
            connection = self._idle_connection() or await self._connect()
            try:
                answer = await connection.send(request)
            except BaseException:
                # Failed, timed out or cancelled mid-call: a late answer must reach no other call.
                self._discard(connection)
                raise
            if connection.reusable:
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
            else:
                self._discard(connection)
            return answer

    def _idle_connection(self) -> _Connection | None:
        """The connection used last that is still open and not idle too long; the ones idle too long are closed."""
        fresh_after = time.monotonic() - self._keepalive
        # The pool is a stack: the longest idle are at its bottom.
        while self._idle and self._idle[0].idle_since <= fresh_after:
            self._discard(self._idle.popleft())
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable:
                return connection
            self._discard(connection)
        return None

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self._read_timeout),
                    self._host,
                    self._port,
                    ssl=self._tls,
                    server_hostname=self._host if self._tls else None,
                )
        except TimeoutError as exc:
            raise ConnectTimedOut(f"{self._host}:{self._port} within {self._connect_timeout}s") from exc
        except OSError as exc:  # refused, unreachable, unresolvable, a certificate refused
            raise ConnectFailed(f"{self._host}:{self._port}: {exc}") from exc
        if self._closed:  # closed while connecting: nothing would ever close this one
            connection.close()
            raise ConnectionClosed("the pool is closed")
        self._open.add(connection)
        return connection

    async def aclose(self) -> None:
        """Close every connection; calls in flight fail with ``ConnectionClosed``, and later ones too."""
        self._closed = True
        for connection in self._open:
            connection.close()
        self._open.clear()
        self._idle.clear()
        # Lets the transports' connection_lost callbacks run before the loop may close.
        await asyncio.sleep(0)
