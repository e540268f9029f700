"""A lean, multiplexed Redis connection for the hot path: the scripts that read and update aggregates.

redis-py spends over 100 µs of CPU on each call (pool checkout and locks, a
timeout and a task per send, packing in Python), while Redis runs the read
script in a few. This channel keeps one connection, writes all the calls made
in one event-loop turn as one packet (packed by hiredis, in C) and hands the
replies out in order, since Redis answers a connection's commands in the order
they were sent. Each call is still one EVALSHA run atomically on its own.

It speaks EVALSHA (and SCRIPT LOAD, ASKING), over the same endpoint and credentials as the redis-py
client it is made from (plain TCP, TLS with default verification, or a unix
socket; username/password and database from the URL). Failures raise
redis-py's exceptions, so callers treat them alike: a lost connection fails
every call in flight with ``ConnectionError`` and the next call reconnects; a
connection that answers nothing for ``socket_timeout`` is dropped and its calls
fail with ``TimeoutError``. Replies are matched to calls by their order, which
TCP keeps: a call given up before its reply (its request's deadline) keeps its
place, and its reply, when it comes, is dropped, so the calls beside it go on.

A script Redis does not hold (a restart, a failover, ``SCRIPT FLUSH``: nothing
ran) is loaded on the same connection and called again. A ``READONLY`` answer
means the node was demoted: the connection is dropped, so that the next call
reaches the primary.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol, cast

import hiredis
from redis import exceptions as errors
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.commands.core import AsyncScript
from redis.typing import EncodableT

# Options a URL may set that the channel honours; any other makes it step aside for redis-py.
_UNDERSTOOD = frozenset(
    {"host", "port", "path", "db", "username", "password", "socket_timeout", "socket_connect_timeout"}
)
# Client-wide options redis-py copies into every connection's options; none changes the wire.
_CLIENT_ONLY = frozenset(
    {
        "retry",
        "health_check_interval",
        "redis_connect_func",
        "himport_registry",
        "maint_notifications_pool_handler",
        "maint_notifications_config",
        "orig_host_address",
        "orig_socket_timeout",
        "orig_socket_connect_timeout",
    }
)
_DEFAULT_TIMEOUT = 1.0
# Error replies a caller acts on, as redis-py's parser names them; the rest are plain ResponseErrors.
_ERRORS: dict[str, type[errors.ResponseError]] = {
    "NOSCRIPT": errors.NoScriptError,
    "MOVED": errors.MovedError,
    "ASK": errors.AskError,
    "TRYAGAIN": errors.TryAgainError,
    "CLUSTERDOWN": errors.ClusterDownError,
    "READONLY": errors.ReadOnlyError,
}


def _classified(reply: errors.ResponseError) -> errors.ResponseError:
    code, _, rest = str(reply).partition(" ")
    kind = _ERRORS.get(code)
    if kind is None:
        return reply
    # A redirection's text is "<slot> <host>:<port>", which its class parses.
    return kind(rest if kind in (errors.MovedError, errors.AskError) else str(reply))


def _pack(*args: EncodableT) -> bytes:
    # hiredis packs in C; its stub types the command as a one-element tuple.
    packed: bytes = hiredis.pack_command(cast(Any, args))
    return packed


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiters: deque[asyncio.Future[Any] | None] = deque()
        self.pending: list[bytes] = []
        self.progress = 0.0  # when a reply last arrived, or waiting began
        self.failure: Exception | None = None
        self._reader = hiredis.Reader(replyError=errors.ResponseError)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        self.progress = time.monotonic()
        try:
            while (reply := self._reader.gets()) is not False:
                if isinstance(reply, errors.ResponseError):
                    reply = _classified(reply)
                self._answer(self.waiters.popleft(), reply)
                if isinstance(reply, errors.ReadOnlyError):
                    # The node was demoted (a failover): the next call must reach the primary.
                    self.abort(errors.ConnectionError("Redis node is a replica now"))
                    return
        except (hiredis.ProtocolError, IndexError):
            # Garbage, or a reply nobody asked for: the stream can no longer be trusted.
            self.abort(errors.ConnectionError("Redis protocol error"))

    @staticmethod
    def _answer(waiter: asyncio.Future[Any] | None, reply: Any) -> None:
        if waiter is None or waiter.done():  # a reply nobody waits for, or its caller gave up
            return
        if isinstance(reply, errors.ResponseError):
            waiter.set_exception(reply)
        else:
            waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        failure = self.failure or errors.ConnectionError(f"Redis connection lost: {exc or 'closed'}")
        self.failure = failure
        while self.waiters:
            waiter = self.waiters.popleft()
            if waiter is not None and not waiter.done():
                waiter.set_exception(failure)

    def call(self, packed: bytes) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        self._queue(packed, future)
        return future

    def send(self, packed: bytes) -> None:
        """A command whose reply is dropped (ASKING, which answers OK)."""
        self._queue(packed, None)

    def _queue(self, packed: bytes, waiter: asyncio.Future[Any] | None) -> None:
        if not self.pending:
            asyncio.get_running_loop().call_soon(self.flush)
        if not self.waiters:
            self.progress = time.monotonic()
        self.pending.append(packed)
        self.waiters.append(waiter)

    def flush(self) -> None:
        packets, self.pending = self.pending, []
        if self.transport is not None:
            self.transport.write(b"".join(packets))

    def abort(self, failure: Exception) -> None:
        self.failure = failure
        if self.transport is not None:
            self.transport.abort()


class Scripts(Protocol):
    """Where the cache runs its scripts: a :class:`ScriptChannel`, or one per primary of a cluster."""

    async def run(self, script: AsyncScript, keys: list[str], args: Sequence[EncodableT]) -> Any: ...

    async def aclose(self) -> None: ...


class ScriptChannel:
    """``await channel.run(script, keys, args)``: one script call, multiplexed with the others of
    the same event-loop turn."""

    def __init__(self, options: dict[str, Any], *, tls: bool) -> None:
        self._options = options
        self._tls = tls
        self._timeout = float(options.get("socket_timeout") or _DEFAULT_TIMEOUT)
        self._connect_timeout = float(options.get("socket_connect_timeout") or self._timeout)
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False

    @staticmethod
    def _connection_options(redis: Redis) -> dict[str, Any]:
        pool = redis.connection_pool
        return {key: value for key, value in pool.connection_kwargs.items() if key not in _CLIENT_ONLY}

    @classmethod
    def unsupported(cls, redis: Redis) -> str | None:
        """Why no channel can be made for ``redis`` (for the log line), or None when one can."""
        connection_class = redis.connection_pool.connection_class
        if connection_class not in (Connection, SSLConnection, UnixDomainSocketConnection):
            return f"connection class {connection_class.__name__}"
        unknown = sorted(set(cls._connection_options(redis)) - _UNDERSTOOD)
        return f"URL options {', '.join(unknown)}" if unknown else None

    @classmethod
    def for_client(cls, redis: Redis) -> ScriptChannel | None:
        """A channel to the same Redis as ``redis``, or None when its options are beyond this channel."""
        if cls.unsupported(redis) is not None:
            return None
        tls = redis.connection_pool.connection_class is SSLConnection
        return cls(cls._connection_options(redis), tls=tls)

    def to_node(self, host: str, port: int) -> ScriptChannel:
        """A channel with the same credentials and timeouts to another node (of a cluster)."""
        return ScriptChannel({**self._options, "host": host, "port": port}, tls=self._tls)

    async def run(
        self, script: AsyncScript, keys: list[str], args: Sequence[EncodableT], *, asking: bool = False
    ) -> Any:
        """``script`` on ``keys`` and ``args``; ``asking`` sends ASKING first (a cluster's redirection
        during a migration)."""
        try:
            return await self._send(script.sha, keys, args, asking)
        except errors.NoScriptError:
            # Redis lost its scripts (a restart, a failover, SCRIPT FLUSH), so nothing ran.
            protocol = self._live() or await self._connected()
            await protocol.call(_pack("SCRIPT", "LOAD", script.script))
            return await self._send(script.sha, keys, args, asking)

    async def _send(self, sha: str, keys: list[str], args: Sequence[EncodableT], asking: bool) -> Any:
        # The connection at hand without another coroutine frame: this runs on every script call.
        protocol = self._live() or await self._connected()
        if asking:
            protocol.send(_pack("ASKING"))
        return await protocol.call(_pack("EVALSHA", sha, len(keys), *keys, *args))

    def _live(self) -> _Protocol | None:
        protocol = self._protocol
        return protocol if protocol is not None and protocol.transport is not None else None

    async def _connected(self) -> _Protocol:
        if self._closed:
            raise errors.ConnectionError("Redis channel closed")
        # Concurrent callers share one connection attempt.
        connecting = self._connecting
        if connecting is None:
            connecting = self._connecting = asyncio.ensure_future(self._connect())
            connecting.add_done_callback(self._connect_done)
        try:
            return await asyncio.shield(connecting)
        except asyncio.CancelledError:
            # The attempt, not this caller, was cancelled: the channel was closed under it.
            if connecting.cancelled() and self._closed:
                raise errors.ConnectionError("Redis channel closed") from None
            raise

    def _connect_done(self, task: asyncio.Task[_Protocol]) -> None:
        self._connecting = None
        if not task.cancelled() and task.exception() is None:
            self._protocol = task.result()
            self._arm_watchdog()

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        options = self._options
        try:
            async with asyncio.timeout(self._connect_timeout):
                if "path" in options:
                    _, protocol = await loop.create_unix_connection(_Protocol, options["path"])
                else:
                    context = ssl.create_default_context() if self._tls else None
                    host = options.get("host", "localhost")
                    _, protocol = await loop.create_connection(
                        _Protocol, host, int(options.get("port", 6379)), ssl=context
                    )
                await self._handshake(protocol)
        except TimeoutError as exc:
            raise errors.TimeoutError("Timeout connecting to Redis") from exc
        except OSError as exc:
            raise errors.ConnectionError(f"Error connecting to Redis: {exc}") from exc
        return protocol

    async def _handshake(self, protocol: _Protocol) -> None:
        options = self._options
        commands: list[tuple[EncodableT, ...]] = []
        if options.get("password"):
            credentials = (options["username"],) if options.get("username") else ()
            commands.append(("AUTH", *credentials, options["password"]))
        if options.get("db"):
            commands.append(("SELECT", options["db"]))
        replies = [protocol.call(_pack(*command)) for command in commands]
        try:
            for reply in replies:
                await reply
        except errors.ResponseError as exc:
            refused = errors.ConnectionError(f"Redis refused the connection: {exc}")
            protocol.abort(refused)
            raise refused from exc

    def _arm_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._watchdog = asyncio.get_running_loop().call_later(self._timeout / 4, self._watch)

    def _watch(self) -> None:
        """Drop a connection that has owed an answer for longer than the timeout."""
        protocol = self._protocol
        if protocol is None or protocol.transport is None:
            self._watchdog = None
            return
        if protocol.waiters and time.monotonic() - protocol.progress > self._timeout:
            protocol.abort(errors.TimeoutError("Timeout reading from Redis"))
            self._watchdog = None
            return
        self._arm_watchdog()

    async def aclose(self) -> None:
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._connecting is not None:
            self._connecting.cancel()
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None
