"""A fault-injecting TCP proxy for the failure tests (standard library only).

It listens on 127.0.0.1 and forwards to a TCP ``(host, port)`` or a unix socket
path. The mode can be switched while traffic flows:

- ``pass``: forward both ways;
- ``delay(s)``: deliver each chunk ``s`` seconds after it arrived (latency, not a
  bandwidth cap: chunks queue behind each other but are not slowed further);
- ``blackhole``: accept and read, never forward nor answer;
- ``reset``: drop every connection with a TCP reset, the open ones included.

Independently, ``hold_next()`` holds the next request any client sends, and the
rest of what its connection sends, until ``release()``, as a network path can
hold one request while later ones pass (on the same server's other connections):
the request then arrives after its sender gave up on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import struct
import time
from pathlib import Path
from typing import Self

Upstream = tuple[str, int] | Path

# Read size per chunk; small enough that delays apply per protocol message.
_CHUNK = 65536
# How long a released request's answer is waited for, its sender gone.
_ANSWER_SECONDS = 10.0


class Mode(enum.Enum):
    PASS = "pass"
    DELAY = "delay"
    BLACKHOLE = "blackhole"
    RESET = "reset"


def _abort(writer: asyncio.StreamWriter | None) -> None:
    """Close at once; on TCP with SO_LINGER 0 so the peer sees a reset, not a clean FIN."""
    if writer is None or writer.transport.is_closing():
        return
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    """One client connection and, unless black-holed from the start, its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.gate: asyncio.Event | None = None
        # Set when the upstream has answered on this link since its hold was released.
        self.answered = asyncio.Event()

    def abort(self) -> None:
        _abort(self.client)
        _abort(self.upstream)


class FaultProxy:
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.mode = Mode.PASS
        self.delay_seconds = 0.0
        self.connections_accepted = 0
        self.bytes_from_clients = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._hold_next = False
        self._gate = asyncio.Event()
        # Set when the held request's connection has closed, the request delivered and answered.
        self.held_finished = asyncio.Event()

    @property
    def port(self) -> int:
        assert self._server is not None, "proxy not started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for link in list(self._links):
            link.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def passthrough(self) -> None:
        self.mode = Mode.PASS

    def delay(self, seconds: float) -> None:
        self.delay_seconds = seconds
        self.mode = Mode.DELAY

    def blackhole(self) -> None:
        self.mode = Mode.BLACKHOLE

    def hold_next(self) -> None:
        self._hold_next = True
        self._gate.clear()
        self.held_finished.clear()

    def release(self) -> None:
        self._gate.set()

    def reset(self) -> None:
        self.mode = Mode.RESET
        for link in list(self._links):
            link.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections_accepted += 1
        link = _Link(writer)
        self._links.add(link)
        try:
            await self._serve(link, reader)
        except (OSError, asyncio.IncompleteReadError):
            pass  # a peer went away: that is what this proxy is for
        finally:
            self._links.discard(link)
            link.abort()
            self._tasks.discard(task)
            if link.gate is not None:
                self.held_finished.set()

    async def _serve(self, link: _Link, reader: asyncio.StreamReader) -> None:
        if self.mode is Mode.RESET:
            return
        if self.mode is Mode.BLACKHOLE:
            # Swallow whatever the client sends until it gives up.
            while await reader.read(_CHUNK):
                pass
            return
        up_reader, link.upstream = await self._connect_upstream()
        to_upstream = asyncio.ensure_future(self._pump(reader, link.upstream, link, count=True))
        to_client = asyncio.ensure_future(self._pump(up_reader, link.client, link, count=False))
        try:
            # Either side closing ends the link; the other direction is then moot.
            await asyncio.wait([to_upstream, to_client], return_when=asyncio.FIRST_COMPLETED)
            if link.gate is not None:
                # The held request went upstream long after its sender left: it is served whole
                # once the upstream answers.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(link.answered.wait(), _ANSWER_SECONDS)
        finally:
            for pump in (to_upstream, to_client):
                pump.cancel()
            await asyncio.gather(to_upstream, to_client, return_exceptions=True)

    async def _connect_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if isinstance(self.upstream, Path):
            return await asyncio.open_unix_connection(str(self.upstream))
        return await asyncio.open_connection(*self.upstream)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link, *, count: bool
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes, asyncio.Event | None] | None] = asyncio.Queue()
        forward = asyncio.ensure_future(self._forward(queue, writer))
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                if count:
                    self.bytes_from_clients += len(data)
                    if self._hold_next and link.gate is None:
                        link.gate, self._hold_next = self._gate, False
                elif link.gate is not None and link.gate.is_set():
                    link.answered.set()
                gate = link.gate if count else None
                # The mode at arrival decides the chunk's fate, like a network path would.
                if self.mode is Mode.PASS:
                    queue.put_nowait((0.0, data, gate))
                elif self.mode is Mode.DELAY:
                    queue.put_nowait((time.monotonic() + self.delay_seconds, data, gate))
            queue.put_nowait(None)
            await forward
        finally:
            forward.cancel()
            await asyncio.gather(forward, return_exceptions=True)

    @staticmethod
    async def _forward(
        queue: asyncio.Queue[tuple[float, bytes, asyncio.Event | None] | None], writer: asyncio.StreamWriter
    ) -> None:
        while (item := await queue.get()) is not None:
            due, data, gate = item
            if gate is not None:
                await gate.wait()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
