"""Reading the table's stream in a process, as the Lambda function does in production.

Local mode and the tests have no Lambda: the application polls the stream
itself when ``STATS_CHANGE_CAPTURE`` is on. Shards open at start are read from
their latest record as of :meth:`StreamPoller.start`, which the application
awaits before it serves, shards found later (a split) from their first, and a
batch that could not be applied is read again from the same iterator, so every
change made once the application serves is applied at least once. Checkpoints live in
memory: what is written while no poller runs is left to the read path's own
bounds, which is why production uses Lambda, whose checkpoints are durable.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from service.changes.applier import ChangeApplier
from service.domain.errors import CacheUnavailable, DependencyUnavailable

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
# How many polling rounds between looks for new shards.
_DISCOVER_EVERY = 25


class StreamPoller:
    def __init__(self, streams: Any, stream_arn: str, applier: ChangeApplier, interval: float = POLL_SECONDS) -> None:
        self._streams = streams
        self._arn = stream_arn
        self._applier = applier
        self._interval = interval
        self._iterators: dict[str, str] = {}
        self._known: set[str] = set()

    async def _discover(self, position: str) -> None:
        description = (await self._streams.describe_stream(StreamArn=self._arn))["StreamDescription"]
        for shard in description["Shards"]:
            shard_id = shard["ShardId"]
            if shard_id in self._known:
                continue
            reply = await self._streams.get_shard_iterator(
                StreamArn=self._arn, ShardId=shard_id, ShardIteratorType=position
            )
            self._known.add(shard_id)
            self._iterators[shard_id] = reply["ShardIterator"]

    async def _read(self, shard_id: str, iterator: str) -> None:
        reply = await self._streams.get_records(ShardIterator=iterator, Limit=1000)
        if reply["Records"]:
            await self._applier.apply(reply["Records"])
        following = reply.get("NextShardIterator")
        if following:
            self._iterators[shard_id] = following
        else:  # a closed shard, read to its end
            del self._iterators[shard_id]

    async def start(self) -> None:
        """Take each open shard's position now: changes from here on are read."""
        await self._discover("LATEST")

    async def run(self) -> None:
        """Poll until cancelled (after :meth:`start`)."""
        rounds = 0
        while True:
            rounds += 1
            try:
                if rounds % _DISCOVER_EVERY == 0:
                    await self._discover("TRIM_HORIZON")
                for shard_id, iterator in list(self._iterators.items()):
                    await self._read(shard_id, iterator)
            except (CacheUnavailable, DependencyUnavailable, BotoCoreError, ClientError) as exc:
                # The same iterators are read again next round: nothing is skipped.
                log.warning("change capture paused", extra={"error": type(exc).__name__})
            await asyncio.sleep(self._interval)
