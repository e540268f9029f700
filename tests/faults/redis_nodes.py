"""Redis servers on loopback TCP ports: a primary with replicas, and a local Redis Cluster."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from redis import Redis

from localmode.servers import RedisServer, free_port


class TcpRedisServer(RedisServer):
    """redis-server on a loopback TCP port as well as its socket, so that a replica can reach it."""

    def __init__(self, directory: Path, *extra: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__(directory)
        self.port = free_port()
        # A replica's full sync writes the received snapshot into --dir.
        self._extra = ("--dir", str(directory), *extra)

    def command(self) -> list[str]:
        command = super().command()
        command[command.index("--port") + 1] = str(self.port)
        return [*command, "--bind", "127.0.0.1", *self._extra]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> Redis:
        return Redis(host="127.0.0.1", port=self.port, socket_timeout=5)


def _command(client: Redis, *args: Any) -> Any:
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def _redis_cli(*args: str) -> str:
    binary = shutil.which("redis-cli")
    assert binary is not None, "redis-cli comes with redis-server (scripts/test installs it)"
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _wait(ready: Callable[[], bool], what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not ready():
        assert time.monotonic() < deadline, f"{what} within {within}s"
        time.sleep(0.1)


class LocalCluster:
    """Three primaries, each with a replica, made a cluster by ``redis-cli --cluster create``.

    A node that stops being seen for ``NODE_TIMEOUT_MS`` is failed over to its replica."""

    NODE_TIMEOUT_MS = 1000

    def __init__(self, directory: Path, primaries: int = 3) -> None:
        options = ["--cluster-enabled", "yes", "--cluster-node-timeout", str(self.NODE_TIMEOUT_MS)]
        options += ["--repl-diskless-sync-delay", "0"]
        # The bus port is named: the default, 10000 above the node's, may not exist.
        self.nodes = [
            TcpRedisServer(
                directory / f"node-{n}",
                *options,
                "--cluster-config-file",
                f"nodes-{n}.conf",
                "--cluster-port",
                str(bus),
            )
            for n, bus in enumerate(free_port() for _ in range(2 * primaries))
        ]

    @property
    def url(self) -> str:
        """A live node's: any node serves as the cluster's entry point."""
        live = next(node for node in self.nodes if node.process is not None)
        return f"redis://{live.address}/0"

    def __enter__(self) -> Self:
        for node in self.nodes:
            node.start()
        addresses = [node.address for node in self.nodes]
        _redis_cli("--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes")
        _wait(self.settled, "the cluster settles")
        return self

    def __exit__(self, *exc: object) -> None:
        for node in self.nodes:
            node.stop()

    def _roles(self) -> dict[str, str]:
        """Each live node's role by address ("master" or "slave")."""
        roles = {}
        for node in self.nodes:
            if node.process is None:
                continue
            with node.client() as client:
                roles[node.address] = str(client.info("replication")["role"])
        return roles

    def settled(self) -> bool:
        """Every live node agrees the cluster is whole, and every live replica is in sync."""
        for node in self.nodes:
            if node.process is None:
                continue
            with node.client() as client:
                if client.cluster("info")["cluster_state"] != "ok":
                    return False
                replication = client.info("replication")
                if replication["role"] == "slave" and replication.get("master_link_status") != "up":
                    return False
        return True

    def primaries(self) -> list[TcpRedisServer]:
        roles = self._roles()
        return [node for node in self.nodes if roles.get(node.address) == "master"]

    def node_id(self, node: TcpRedisServer) -> str:
        with node.client() as client:
            return str(_command(client, "CLUSTER", "MYID").decode())

    def primary_of(self, slot: int) -> TcpRedisServer:
        for node in self.primaries():
            with node.client() as client:
                mine = _command(client, "CLUSTER", "MYID").decode()
                for start, end, primary, *_ in _command(client, "CLUSTER", "SLOTS"):
                    if start <= slot <= end and primary[2].decode() == mine:
                        return node
        raise AssertionError(f"no primary serves slot {slot}")

    def migrate_slot(self, slot: int, target: TcpRedisServer, pause: float = 0.02) -> None:
        """Move one slot to ``target`` the way a reshard does (IMPORTING/MIGRATING, then MIGRATE key
        by key), pausing between keys so that calls meet the slot half moved (ASK, TRYAGAIN)."""
        source = self.primary_of(slot)
        if source is target:
            return
        target_id = self.node_id(target)
        self.begin_migration(slot, target)
        with source.client() as src, target.client() as dst:
            while keys := _command(src, "CLUSTER", "GETKEYSINSLOT", slot, 1):
                _command(src, "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
                time.sleep(pause)
            for node in (dst, src):
                _command(node, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
        _wait(lambda: self.primary_of(slot) is target, f"slot {slot} moves")

    def begin_migration(self, slot: int, target: TcpRedisServer) -> TcpRedisServer:
        """Mark a slot as moving to ``target`` (IMPORTING there, MIGRATING at its primary); its source."""
        source = self.primary_of(slot)
        with source.client() as src, target.client() as dst:
            _command(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", self.node_id(source))
            _command(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", self.node_id(target))
        return source

    def end_migration(self, slot: int, *nodes: TcpRedisServer) -> None:
        """Give up a migration begun: the slot stays where it was."""
        for node in nodes:
            with node.client() as client:
                _command(client, "CLUSTER", "SETSLOT", slot, "STABLE")

    def kill_primary(self, node: TcpRedisServer) -> None:
        """SIGKILL a primary and wait until its replica has taken over."""
        node.kill()
        _wait(lambda: len(self.primaries()) == len(self.nodes) // 2 and self.settled(), "a replica takes over")
