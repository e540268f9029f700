"""A fixed-rate (open-loop) HTTP load generator, because Debian has no wrk2.

Request *i* is due at ``start + i / rate`` whether or not earlier ones have been
answered, and its latency is measured from that due time, not from when a
connection was free to send it. A server that falls behind therefore shows the
queueing delay its clients would see (no coordinated omission).

The client speaks just enough HTTP/1.1 for this service: keep-alive
connections, one request in flight per connection, responses framed by
Content-Length. It runs in protocol callbacks, without a coroutine per request,
so that one core offers thousands of requests per second on time, and it polls
rather than sleeps in the last two milliseconds before a request is due (giving
way to other processes on its core at each turn), since the kernel may wake a
sleeping process late. How late requests still went out
is reported as ``generator_lag_p99_ms`` (it is part of every latency).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections import deque
from collections.abc import Iterator
from typing import cast

from bench.measure import LoadResult, percentile

_HEADER_END = b"\r\n\r\n"
# Sleep until this long before a request is due, then poll: wake-ups come late on a busy machine.
_SPIN_SECONDS = 0.002
_LENGTH = b"\r\ncontent-length:"


class _Connection(asyncio.Protocol):
    def __init__(self, generator: _Generator) -> None:
        self._generator = generator
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self.due: float | None = None  # the in-flight request's due time

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._generator.lost(self)

    def send(self, due: float, request: bytes) -> None:
        assert self._transport is not None
        self.due = due
        self._transport.write(request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(_HEADER_END)
        if end < 0:
            return
        head = bytes(self._buffer[:end]).lower()
        start = head.find(_LENGTH)
        line_end = head.find(b"\r\n", start + 2)
        length = int(head[start + len(_LENGTH) : line_end if line_end > 0 else None]) if start >= 0 else 0
        total = end + len(_HEADER_END) + length
        if len(self._buffer) < total:
            return
        del self._buffer[:total]
        self._generator.answered(self, int(head[9:12]))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class _Generator:
    def __init__(self, host: str, port: int, requests: Iterator[bytes], rate: float, total: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._host, self._port = host, port
        self._requests = requests
        self._rate = rate
        self._total = total
        self._next = 0
        self._start = 0.0
        self._idle: deque[_Connection] = deque()
        self._pending: deque[tuple[float, bytes]] = deque()
        self.connections: list[_Connection] = []
        self.latencies: list[float] = []
        self.lags: list[float] = []
        self.errors = self.failed = 0
        self.finished = 0.0
        self.done: asyncio.Future[None] = self._loop.create_future()
        self._reconnects: set[asyncio.Future[None]] = set()

    async def connect(self) -> None:
        _, connection = await self._loop.create_connection(lambda: _Connection(self), self._host, self._port)
        self.connections.append(connection)
        self._ready(connection)

    def start(self) -> None:
        self._start = time.perf_counter() + 0.01
        self._tick()

    def _due(self, index: int) -> float:
        return self._start + index / self._rate

    def _tick(self) -> None:
        """Put out every request that is due; come back when the next one is."""
        now = time.perf_counter()
        while self._next < self._total and (due := self._due(self._next)) <= now:
            self.lags.append(now - due)
            request = next(self._requests)
            if self._idle:
                self._idle.popleft().send(due, request)
            else:
                self._pending.append((due, request))
            self._next += 1
        if self._next < self._total:
            delay = self._due(self._next) - time.perf_counter()
            if delay > _SPIN_SECONDS:
                self._loop.call_later(delay - _SPIN_SECONDS, self._tick)
            else:
                # Poll the loop until due (a sleeping process is often woken milliseconds late),
                # yielding the core each time to the servers that share it.
                os.sched_yield()
                self._loop.call_soon(self._tick)

    def _ready(self, connection: _Connection) -> None:
        connection.due = None
        if self._pending:
            connection.send(*self._pending.popleft())
        else:
            self._idle.append(connection)

    def _settled(self) -> None:
        if len(self.latencies) + self.failed >= self._total and not self.done.done():
            self.done.set_result(None)

    def answered(self, connection: _Connection, status: int) -> None:
        assert connection.due is not None
        self.finished = time.perf_counter()
        self.latencies.append(self.finished - connection.due)
        if not 200 <= status < 400:
            self.errors += 1
        self._ready(connection)
        self._settled()

    def lost(self, connection: _Connection) -> None:
        if connection in self._idle:
            self._idle.remove(connection)
        if connection.due is not None and not self.done.done():
            self.failed += 1
            self._settled()
            # Replace it, so the rate stays offered over as many connections.
            self._reconnects.add(reconnect := asyncio.ensure_future(self.connect()))
            reconnect.add_done_callback(self._reconnects.discard)

    def result(self) -> LoadResult:
        seconds = max(self.finished - self._start, 1e-9)
        result = LoadResult.from_latencies(
            "open-loop", self.latencies, seconds, self.errors + self.failed, offered_rps=self._rate
        )
        return dataclasses.replace(result, generator_lag_p99_ms=percentile(sorted(self.lags), 99) * 1000)


async def fixed_rate(
    host: str,
    port: int,
    requests: Iterator[bytes],
    *,
    rate: float,
    seconds: float,
    connections: int,
) -> LoadResult:
    """Offer ``rate`` requests per second for ``seconds``; latencies from each request's due time."""
    total = max(1, round(rate * seconds))
    generator = _Generator(host, port, requests, rate, total)
    for _ in range(connections):
        await generator.connect()
    generator.start()
    try:
        # Whatever is still unanswered long after the last due time counts as failed.
        await asyncio.wait_for(asyncio.shield(generator.done), timeout=seconds + max(5.0, seconds))
    except TimeoutError:
        generator.failed = total - len(generator.latencies)
        generator.done.set_result(None)  # so closing the connections below counts nothing more
    for connection in generator.connections:
        connection.close()
    return generator.result()
