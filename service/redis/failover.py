"""Noticing that the Redis primary changed, so completions made before are not trusted.

ElastiCache replicates asynchronously: after a failover the promoted node may
hold a *complete* aggregate that lacks updates the old primary acknowledged,
under the same incarnation, so nothing in the hash itself tells. What does
change is the primary's ``run_id``. Every new connection, from redis-py's pool
and from the lean script channel alike, runs :data:`EPOCH_SCRIPT` before any
other command: the server keeps ``stats:primary = "<run_id>:<epoch>"``, and a
connection that finds another node's run_id there (the key was replicated from
the old primary) moves the epoch on by one. Completions record the epoch they
were made in, and a read trusts only a hash completed in the current epoch;
anything older is rebuilt from DynamoDB, which holds every acknowledged write.

A failover drops every connection to the old primary, so a process learns the
new epoch on the connection that first reaches the new primary, before that
connection carries a read. No clock is involved, and the steady state costs
nothing: one more argument to the read script.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

EPOCH_KEY = "stats:primary"

# KEYS[1] the epoch key; ARGV[1] this server's run_id. Returns the current epoch.
EPOCH_SCRIPT = """
local seen = redis.call('GET', KEYS[1])
local epoch = 0
if seen then
  local run_id, known = string.match(seen, '^(%w+):(%d+)$')
  if run_id == ARGV[1] then return known end
  epoch = tonumber(known or 0)
end
epoch = epoch + 1
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. string.format('%d', epoch))
return string.format('%d', epoch)
"""

Execute = Callable[..., Awaitable[Any]]


def _run_id(info: Any) -> str:
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith("run_id:"):
            return line.partition(":")[2].strip()
    raise ValueError("INFO server has no run_id")


class PrimaryWatch:
    """The epoch of the primary this process talks to; 0 until a connection has checked."""

    def __init__(self) -> None:
        self.epoch = 0

    async def check(self, execute: Execute) -> None:
        """Run on a fresh connection before anything else; ``execute`` sends one command on it."""
        run_id = _run_id(await execute("INFO", "server"))
        epoch = int(await execute("EVAL", EPOCH_SCRIPT, 1, EPOCH_KEY, run_id))
        # Connections to different nodes can race during a failover: the epoch only moves on.
        self.epoch = max(self.epoch, epoch)

    async def on_redis_py_connect(self, connection: Any) -> None:
        """redis-py's ``redis_connect_func``: its own handshake, then the check."""
        await connection.on_connect()

        async def execute(*args: Any) -> Any:
            await connection.send_command(*args)
            return await connection.read_response()

        await self.check(execute)
