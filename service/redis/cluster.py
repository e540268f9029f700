"""The cache's scripts on a Redis Cluster (ElastiCache cluster mode, or Serverless).

Every script touches the keys of one slot (a course's hash and its boards
share the hash tag ``{courseId}``), so a call goes whole to the primary that
serves the slot, over a lean :class:`~service.redis.channel.ScriptChannel` of
its own. The map
of slots to primaries is redis-py's (``RedisCluster``, which also carries every
other command), learnt from ``CLUSTER SLOTS``.

A redirection means the script did not run, so it is sent on: ``MOVED`` (a
reshard finished, or a failover) to the named primary, which redis-py's map
learns; ``ASK`` (the slot is being migrated and this key already moved) once
to the importing node, after ``ASKING``; ``TRYAGAIN`` (a migration has split the
keys of one call, or, for a course whose boards do not all exist, is under way)
a few times after a short pause, then the cache does without Redis for that
call, without counting it as Redis failing. A lost connection is not retried, as on
one node: the script may have run, and the cache marks what it could not
finish. It asks redis-py to learn the map again, since a primary that went
away is usually one a replica is taking over from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter
from redis import exceptions as errors
from redis.asyncio import RedisCluster
from redis.commands.core import AsyncScript
from redis.typing import EncodableT

from service.redis.channel import ScriptChannel

log = logging.getLogger(__name__)

# As redis-py's RedisCluster: a call redirected this often is given up.
MAX_REDIRECTIONS = 16
TRY_AGAIN_TIMES = 3
TRY_AGAIN_SECONDS = 0.02


class ClusterChannel:
    """``await channel.run(script, keys, args)`` on the primary that serves ``keys``."""

    def __init__(self, cluster: RedisCluster, template: ScriptChannel, redirections: Counter | None = None) -> None:
        self._cluster = cluster
        self._template = template
        self._redirections = redirections
        self._nodes: dict[tuple[str, int], ScriptChannel] = {}
        self._learning: asyncio.Task[None] | None = None

    async def run(self, script: AsyncScript, keys: list[str], args: Sequence[EncodableT]) -> Any:
        node = await self._primary_of(keys[0])
        asking = False
        tries = TRY_AGAIN_TIMES
        for _ in range(MAX_REDIRECTIONS):
            try:
                return await self._channel(node).run(script, keys, args, asking=asking)
            except errors.MovedError as moved:
                self._count("moved")
                await self._moved(moved)
                node, asking = (moved.host, int(moved.port)), False
            except errors.AskError as ask:
                self._count("ask")
                node, asking = (ask.host, int(ask.port)), True
            except errors.TryAgainError:
                # A course's keys, some of which do not exist, answer this for as long as their slot is
                # migrated: a few tries, then the caller does without Redis.
                self._count("tryagain")
                tries -= 1
                if not tries:
                    raise
                # The same node again, as it was asked (an importing node answers only after ASKING).
                await asyncio.sleep(TRY_AGAIN_SECONDS)
            except (errors.ConnectionError, errors.TimeoutError, errors.ClusterDownError):
                self._learn_slots()
                raise
        raise errors.ClusterError(f"a script on {keys[0]!r} was redirected {MAX_REDIRECTIONS} times")

    async def _primary_of(self, key: str) -> tuple[str, int]:
        if not self._cluster.nodes_manager.slots_cache:
            await self._cluster.initialize()
        node = self._cluster.get_node_from_key(key)
        assert node is not None, "only a replica's lookup finds none"
        return node.host, int(node.port)

    async def _moved(self, moved: errors.MovedError) -> None:
        try:
            await self._cluster.nodes_manager.move_slot(moved)
        except KeyError:  # a slot the map does not hold: it is learnt whole again
            self._learn_slots()

    def _count(self, kind: str) -> None:
        if self._redirections is not None:
            self._redirections.labels(kind).inc()

    def _channel(self, node: tuple[str, int]) -> ScriptChannel:
        channel = self._nodes.get(node)
        if channel is None:
            channel = self._nodes[node] = self._template.to_node(*node)
        return channel

    def _learn_slots(self) -> None:
        """Ask redis-py to read the map of slots again, once at a time, in the background."""
        if self._learning is None or self._learning.done():
            self._learning = asyncio.ensure_future(self._learnt())

    async def _learnt(self) -> None:
        try:
            await self._cluster.nodes_manager.initialize()
        except (errors.RedisError, errors.RedisClusterException) as exc:
            log.warning("could not learn the Redis Cluster's slots", extra={"error": str(exc)})
            return
        # A node that serves no slot any more (gone, or a replica now) gets no calls: its channel goes.
        primaries = {(node.host, int(node.port)) for node in self._cluster.get_primaries()}
        for node in set(self._nodes) - primaries:
            channel = self._nodes.pop(node, None)
            if channel is not None:
                await channel.aclose()

    async def aclose(self) -> None:
        if self._learning is not None:
            self._learning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._learning
        for channel in self._nodes.values():
            await channel.aclose()
        self._nodes.clear()
