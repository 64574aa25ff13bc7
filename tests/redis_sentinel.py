"""A throwaway Redis Sentinel deployment for tests: one master, a replica and three sentinels on free loopback ports.

Every process is one this helper starts (``--daemonize no``) in its own
directory and stops by its pid; the shared server on 6379 is never touched.
The sentinels (``redis-sentinel``, or ``redis-server --sentinel``) monitor
the master as ``mymaster`` with a quorum of 2 and hold a master failed after
1 second without answers. Ready once every sentinel knows the other two and
every replica, and every replica's link is up.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from .pgbouncer import free_port
from .redis_cluster import require_binaries

SERVICE = "mymaster"
DOWN_AFTER_MS = 1000


@dataclass
class Process:
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=3, decode_responses=True)

    def command(self, *args: Any) -> Any:
        with self.client() as c:
            return c.execute_command(*args)

    def log(self) -> str:
        path = self.workdir / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"


class LocalSentinel:
    """A master, ``replicas`` replicas and ``sentinels`` sentinels, under ``workdir``."""

    def __init__(self, workdir: Path, *, replicas: int = 1, sentinels: int = 3) -> None:
        self.server, _ = require_binaries()
        self.sentinel_binary = shutil.which("redis-sentinel")
        self.servers = [Process(free_port(), workdir / f"server-{i}") for i in range(1 + replicas)]
        self.sentinels = [Process(free_port(), workdir / f"sentinel-{i}") for i in range(sentinels)]

    def url(self, **query: Any) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        params = "&".join(f"{k}={v}" for k, v in query.items())
        return f"redis+sentinel://{hosts}/{SERVICE}" + (f"?{params}" if params else "")

    def start(self) -> None:
        try:
            master = self.servers[0]
            for server in self.servers:
                self._launch_server(server, None if server is master else master.port)
            for server in self.servers:
                self._wait_ping(server)
            for sentinel in self.sentinels:
                self._launch_sentinel(sentinel, master.port)
            for sentinel in self.sentinels:
                self._wait_ping(sentinel)
            self.wait_settled(master)
        except BaseException:
            self.stop()
            raise

    def _launch_server(self, server: Process, master_port: int | None) -> None:
        server.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            self.server, "--port", str(server.port), "--bind", "127.0.0.1", "--dir", str(server.workdir),
            "--logfile", "redis.log", "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        if master_port is not None:
            args += ["--replicaof", "127.0.0.1", str(master_port)]
        server.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _launch_sentinel(self, sentinel: Process, master_port: int) -> None:
        sentinel.workdir.mkdir(parents=True, exist_ok=True)
        conf = sentinel.workdir / "sentinel.conf"
        conf.write_text(
            "\n".join(
                [
                    f"port {sentinel.port}",
                    "bind 127.0.0.1",
                    "daemonize no",
                    f"dir {sentinel.workdir}",
                    "logfile redis.log",
                    f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} 2",
                    f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {SERVICE} 4000",
                    f"sentinel parallel-syncs {SERVICE} 2",
                    "",
                ]
            )
        )
        command = [self.sentinel_binary, str(conf)] if self.sentinel_binary else [self.server, str(conf), "--sentinel"]
        sentinel.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _wait_ping(self, node: Process, within: float = 20) -> None:
        deadline = time.monotonic() + within
        while True:
            try:
                if node.command("PING"):
                    return
            except redis.RedisError:
                pass
            if node.process is None or node.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis on {node.port} did not start:\n{node.log()}")
            time.sleep(0.02)

    def live_servers(self) -> list[Process]:
        return [s for s in self.servers if s.process is not None]

    def master(self) -> Process:
        """The server the sentinels name as master now."""
        _, port = self.sentinels[0].command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        return next(s for s in self.servers if s.port == int(port))

    def wait_settled(self, master: Process, within: float = 60) -> None:
        """Until every sentinel names ``master``, knows the other sentinels and every live replica, and each
        live replica replicates from ``master`` with its link up."""
        deadline = time.monotonic() + within
        while not self._settled(master):
            if time.monotonic() > deadline:
                views = {s.port: self._view(s) for s in self.sentinels}
                raise RuntimeError(f"the Sentinel deployment did not settle on {master.port}: {views}")
            time.sleep(0.1)

    def _view(self, sentinel: Process) -> Any:
        try:
            return {
                "master": sentinel.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE),
                "replicas": [r.get("port") for r in sentinel.client().sentinel_slaves(SERVICE)],
            }
        except redis.RedisError as exc:
            return repr(exc)

    def _settled(self, master: Process) -> bool:
        replicas = [s for s in self.live_servers() if s is not master]
        try:
            if master.client().info("replication")["role"] != "master":
                return False
            for replica in replicas:
                info = replica.client().info("replication")
                if info["role"] != "slave" or int(info["master_port"]) != master.port:
                    return False
                if info["master_link_status"] != "up":
                    return False
            for sentinel in self.sentinels:
                c = sentinel.client()
                _, port = sentinel.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
                if int(port) != master.port:
                    return False
                others = c.sentinel_sentinels(SERVICE)
                if not isinstance(others, list) or len(others) < len(self.sentinels) - 1:
                    return False
                known = {
                    int(r["port"])
                    for r in c.sentinel_slaves(SERVICE)
                    if "s_down" not in r["flags"] and "disconnected" not in r["flags"]
                }
                if not {r.port for r in replicas} <= known:
                    return False
        except (redis.RedisError, StopIteration, KeyError):
            return False
        return True

    def wait_new_master(self, old: Process, within: float = 60) -> Process:
        """Until the sentinels name a master other than ``old``; that master."""
        deadline = time.monotonic() + within
        while True:
            try:
                master = self.master()
                if master is not old:
                    return master
            except (redis.RedisError, StopIteration):  # a sentinel busy with the failover
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sentinels named no new master within {within}s")
            time.sleep(0.05)

    def failover(self) -> None:
        """Ask a sentinel for a failover now (``SENTINEL FAILOVER``), the old master staying up."""
        self.sentinels[0].command("SENTINEL", "FAILOVER", SERVICE)

    def restart(self, node: Process) -> None:
        """Start a killed server again, empty; the sentinels make it a replica of the current master."""
        self._launch_server(node, None)
        self._wait_ping(node)

    def kill(self, node: Process) -> None:
        """SIGKILL a server by its pid (a crash) and reap it."""
        if node.process is not None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait(10)
            node.process = None

    def stop(self) -> None:
        for node in [*self.sentinels, *self.servers]:
            self.kill(node)
