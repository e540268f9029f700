"""Noticing that a Redis primary changed, so completions made before are not trusted.

ElastiCache replicates asynchronously: after a failover the promoted node may
hold a *complete* aggregate that lacks updates the old primary acknowledged,
so nothing in the hash itself tells. What does tell is the primary's
replication id (``master_replid`` of ``INFO replication``): Redis draws a new
one whenever a node becomes a primary, by promotion (a failover, ``REPLICAOF NO
ONE``, a cluster replica taking over, even the old primary taken back) or by a
restart, and a replica takes its primary's. A node answering with the id a
completion recorded is therefore the primary that made it, still in the same
history.

Every new connection, from redis-py's pool and from the lean script channels
alike, reads the id before any other command and refuses a node that is not a
primary (a stale DNS answer during a failover reaches the demoted node). A
completion records the id of the node it ran on, and a read trusts only a hash
completed under the id of the node it runs on; anything else is rebuilt from
DynamoDB, which holds every acknowledged write. A hash a cluster reshard moves
to another primary is rebuilt too, once. No state is kept in Redis, no clock
is involved, and the steady state costs one argument of the read script.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

Execute = Callable[..., Awaitable[Any]]


def _fields(info: Any) -> dict[str, str]:
    text = info.decode() if isinstance(info, bytes) else str(info)
    return dict(line.strip().partition(":")[::2] for line in text.splitlines() if ":" in line)


class PrimaryWatch:
    """The replication id of the primary a connection reached; "" until one has checked."""

    def __init__(self) -> None:
        self.replication_id = ""

    async def check(self, execute: Execute) -> None:
        """Run on a fresh connection before anything else; ``execute`` sends one command on it.

        A managed endpoint that does not say (no INFO replication, or no role in it) is taken as
        its own primary: it does its own failovers, and its completions are trusted up to the
        cache's maximum age."""
        try:
            fields = _fields(await execute("INFO", "replication"))
        except ResponseError:
            fields = {}
        role = fields.get("role", "master")
        if role != "master":
            raise RedisConnectionError(f"Redis node is a {role}, not a primary")
        self.replication_id = fields.get("master_replid", "")

    async def on_redis_py_connect(self, connection: Any) -> None:
        """redis-py's ``redis_connect_func``: its own handshake, then the check."""
        await connection.on_connect()

        async def execute(*args: Any) -> Any:
            await connection.send_command(*args)
            return await connection.read_response()

        await self.check(execute)
