"""A throwaway Redis Cluster for tests: primaries and replicas of ``redis-server`` on free loopback ports.

Every node is a process this helper starts (``--daemonize no``), in its own
directory under the test's temporary directory, and stops by its own pid; the
shared server on 6379 is never touched. The nodes are joined with
``redis-cli --cluster create`` and the cluster is ready once every node says
``cluster_state:ok``, knows every other node, and every replica is in sync.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot

INSTALL_HINT = (
    "install Redis 7 (it provides redis-server and redis-cli): apt-get install -y redis-server, or brew install redis"
)
NODE_TIMEOUT_MS = 1000
"""How long a node may be silent before the others hold it failed (and its replica takes over)."""


def require_binaries() -> tuple[str, str]:
    """The paths of redis-server and redis-cli; skip (with CI=true: fail) when they are not installed."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        message = f"a Redis Cluster test needs redis-server and redis-cli; {INSTALL_HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return server, cli


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_port(taken: set[int]) -> int:
    """A free loopback port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 10000 < 65536 and port not in taken and _port_free(port + 10000):
            taken.add(port)
            return port
    raise RuntimeError("no free pair of loopback ports for a cluster node")


@dataclass
class Node:
    """One ``redis-server`` of the cluster."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    args: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, decode_responses=True)

    def command(self, *args: str) -> Any:
        """One command on this node, its reply unparsed (``"CLUSTER", "NODES"``: the text)."""
        with self.client() as c:
            return c.execute_command(*args)

    def cluster_info(self) -> dict[str, str]:
        return dict(line.split(":", 1) for line in self.command("CLUSTER", "INFO").splitlines() if ":" in line)

    def replication(self) -> dict[str, Any]:
        with self.client() as c:
            return dict(c.info("replication"))


class LocalCluster:
    """``masters`` primaries with ``replicas`` replicas each, on free loopback ports under ``workdir``."""

    def __init__(self, workdir: Path, *, masters: int = 3, replicas: int = 1) -> None:
        self.server, self.cli = require_binaries()
        taken: set[int] = set()
        self.nodes = [
            Node(port, workdir / str(port))
            for port in (free_cluster_port(taken) for _ in range(masters * (1 + replicas)))
        ]
        self.replicas = replicas

    @property
    def url(self) -> str:
        """A store URL for the cluster (any node is a good first node to ask)."""
        return f"redis://127.0.0.1:{self.nodes[0].port}?cluster=true"

    @property
    def port(self) -> int:
        """A live node's port, for a client's first contact."""
        return next(node.port for node in self.nodes if node.process is not None)

    def start(self) -> None:
        try:
            for node in self.nodes:
                node.workdir.mkdir(parents=True, exist_ok=True)
                self.launch(node)
            for node in self.nodes:
                self._wait_serving(node)
            names = [node.name for node in self.nodes]
            subprocess.run(
                [self.cli, "--cluster", "create", *names, "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=60,
            )
            self.wait_ok()
        except BaseException:
            self.stop()
            raise

    def launch(self, node: Node) -> None:
        """Start (or restart) one node's process; it keeps its cluster config file across restarts."""
        options = {
            "port": node.port,
            "bind": "127.0.0.1",
            "cluster-enabled": "yes",
            "cluster-config-file": "nodes.conf",
            "cluster-node-timeout": NODE_TIMEOUT_MS,
            "cluster-replica-validity-factor": 0,
            "dir": node.workdir,
            "logfile": "redis.log",
            "save": "",
            "appendonly": "no",
            "daemonize": "no",
        }
        node.process = subprocess.Popen(
            [self.server, *(arg for name, value in options.items() for arg in (f"--{name}", str(value)))],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _wait_serving(self, node: Node, within: float = 20) -> None:
        deadline = time.monotonic() + within
        while True:
            try:
                with node.client() as c:
                    if c.ping():
                        return
            except redis.RedisError:
                pass
            if node.process is None or node.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"cluster node {node.name} did not start:\n{self.log(node)}")
            time.sleep(0.02)

    def log(self, node: Node) -> str:
        path = node.workdir / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"

    def live(self) -> list[Node]:
        return [node for node in self.nodes if node.process is not None]

    def wait_ok(self, within: float = 30) -> None:
        """Until every live node reports ``cluster_state:ok`` and knows the live nodes, and every replica is in sync
        (its link is up and it acknowledges its primary's writes)."""
        deadline = time.monotonic() + within
        while not self._settled():
            if time.monotonic() > deadline:
                states = {node.name: self.cluster_nodes(node) for node in self.live()}
                raise RuntimeError(f"the cluster did not settle within {within}s: {states}")
            time.sleep(0.05)

    def _settled(self) -> bool:
        live = self.live()
        try:
            for node in live:
                if node.cluster_info().get("cluster_state") != "ok":
                    return False
                view = self.cluster_nodes(node)
                if sum(1 for flags in view.values() if "fail" not in flags) < len(live):
                    return False
                if "slave" in view[node.name] and node.replication().get("master_link_status") != "up":
                    return False
            return all(
                self._streams_to_replicas(node) for node in live if "master" in self.cluster_nodes(node)[node.name]
            )
        except redis.RedisError:
            return False

    def _streams_to_replicas(self, primary: Node) -> bool:
        """Whether every replica of ``primary`` acknowledges a write to it (after a full sync, a primary streams
        to the replica only once the replica's first acknowledgement arrives, up to a second later)."""
        with primary.client() as c:
            replicas = int(c.info("replication")["connected_slaves"])
            if replicas == 0:
                return True
            start, end = next(
                (int(a), int(b))
                for a, b, owner, *_ in c.execute_command("CLUSTER", "SLOTS")
                if int(owner[1]) == primary.port
            )
            probe = next(f"probe:{i}" for i in range(100_000) if start <= key_slot(f"probe:{i}".encode()) <= end)
            c.set(probe, "1")
            acknowledged = int(c.execute_command("WAIT", replicas, 2000))
            c.delete(probe)
            return acknowledged == replicas

    def cluster_nodes(self, node: Node) -> dict[str, str]:
        """``CLUSTER NODES`` as seen by ``node``: address -> flags and master id (``"master -"``, ``"slave <id>"``)."""
        view: dict[str, str] = {}
        for line in node.command("CLUSTER", "NODES").splitlines():
            parts = line.split()
            view[parts[1].split("@")[0]] = f"{parts[2]} {parts[3]} {parts[0]}"
        return view

    def role(self, node: Node) -> str:
        return str(node.command("ROLE")[0])

    def replica_of(self, primary: Node) -> Node:
        my_id = primary.command("CLUSTER", "MYID")
        for node in self.live():
            if node is not primary and self.cluster_nodes(node)[node.name].split()[1] == my_id:
                return node
        raise RuntimeError(f"{primary.name} has no replica")

    def slot_owners(self) -> Callable[[int], Node]:
        """Which primary serves a slot, as one live node sees the cluster now."""
        ranges = [
            (int(start), int(end), next(node for node in self.nodes if node.port == int(owner[1])))
            for start, end, owner, *_ in self.live()[0].command("CLUSTER", "SLOTS")
        ]

        def owner(slot: int) -> Node:
            return next(node for start, end, node in ranges if start <= slot <= end)

        return owner

    def primary_for_slot(self, slot: int) -> Node:
        return self.slot_owners()(slot)

    def client_names(self) -> list[str]:
        """The names of the clients connected to every live node."""
        return [
            part[len("name=") :]
            for node in self.live()
            for line in node.command("CLIENT", "LIST").splitlines()
            for part in line.split()
            if part.startswith("name=")
        ]

    async def drain(self, primary: Node, replica: Node, pause: float = 0.02) -> None:
        """Hold writes on ``primary`` (``CLIENT PAUSE ... WRITE``, as a manual failover does) until ``replica``
        has everything the primary acknowledged: Redis replicates asynchronously, so without this a write
        acknowledged in the instant before a crash may not have left the primary yet."""
        primary.command("CLIENT", "PAUSE", "30000", "WRITE")
        target = primary.replication()["master_repl_offset"]
        while True:
            if replica.replication()["slave_repl_offset"] >= target:
                return
            await asyncio.sleep(pause)

    def kill(self, node: Node) -> None:
        """SIGKILL the node by its pid (a crash: no shutdown, no final write) and reap it."""
        if node.process is not None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait(10)
            node.process = None

    def restart(self, node: Node) -> None:
        """Start a killed node again: it rejoins from its config file (as a replica, if it was failed over)."""
        self.launch(node)
        self._wait_serving(node)
        self.wait_ok()

    def stop(self) -> None:
        for node in self.nodes:
            self.kill(node)
