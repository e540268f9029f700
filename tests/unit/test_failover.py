"""What a connection's check makes of the answers a node may give to INFO replication."""

from __future__ import annotations

from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from service.redis.failover import PrimaryWatch

REPLID = "5dead1f74a4dab8808f91200f2b869c0132e38d6"
PRIMARY = f"# Replication\r\nrole:master\r\nconnected_slaves:1\r\nmaster_replid:{REPLID}\r\n"


def answering(reply: Any) -> Any:
    async def execute(*command: Any) -> Any:
        assert command == ("INFO", "replication")
        if isinstance(reply, Exception):
            raise reply
        return reply

    return execute


async def test_a_primary_gives_its_replication_id() -> None:
    watch = PrimaryWatch()
    await watch.check(answering(PRIMARY.encode()))
    assert watch.replication_id == REPLID


async def test_a_replica_is_refused() -> None:
    watch = PrimaryWatch()
    with pytest.raises(RedisConnectionError, match="slave, not a primary"):
        await watch.check(answering(PRIMARY.replace("role:master", "role:slave")))
    assert watch.replication_id == ""


@pytest.mark.parametrize("reply", ["", "# Replication\r\n", ResponseError("unknown subcommand")])
async def test_a_managed_endpoint_that_does_not_say_is_its_own_primary(reply: Any) -> None:
    watch = PrimaryWatch()
    watch.replication_id = "an id from a connection before"
    await watch.check(answering(reply))
    assert watch.replication_id == ""
