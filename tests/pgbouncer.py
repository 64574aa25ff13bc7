"""A throwaway PgBouncer for tests: Debian's ``pgbouncer`` in transaction pooling mode on a free loopback port.

The process is one this helper starts (in the foreground, not daemonized), in
its own directory, pointing at the shared PostgreSQL on 127.0.0.1:5432
(database ``test``, trust auth); it is stopped by its own pid. PgBouncer
refuses to run as root, so as root it is started with ``-u postgres`` and its
directory is made readable by that user.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

INSTALL_HINT = "install PgBouncer: apt-get install -y pgbouncer"
CANDIDATES = ("pgbouncer", "/usr/sbin/pgbouncer")


def require_pgbouncer() -> str:
    """The path of the pgbouncer binary; skip (with CI=true: fail) when it is not installed."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    message = f"a PgBouncer test needs the pgbouncer binary; {INSTALL_HINT}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPgBouncer:
    """One ``pgbouncer`` process with ``pool_mode = transaction`` in front of 127.0.0.1:5432."""

    def __init__(self, *, pool_size: int = 8, upstream_port: int = 5432, database: str = "test") -> None:
        self.binary = require_pgbouncer()
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="sessionware-pgbouncer-"))
        self.pool_size = pool_size
        self.upstream_port = upstream_port
        self.database = database
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, user: str = "postgres") -> str:
        """A DSN through the bouncer (add ``?pgbouncer=true`` for the store)."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> None:
        ini = self.workdir / "pgbouncer.ini"
        (self.workdir / "users.txt").write_text('"postgres" ""\n')
        ini.write_text(
            "\n".join(
                [
                    "[databases]",
                    f"{self.database} = host=127.0.0.1 port={self.upstream_port} dbname={self.database}",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {self.port}",
                    "unix_socket_dir =",
                    "auth_type = trust",
                    f"auth_file = {self.workdir / 'users.txt'}",
                    "pool_mode = transaction",
                    f"default_pool_size = {self.pool_size}",
                    "max_client_conn = 500",
                    "server_reset_query =",
                    "ignore_startup_parameters = extra_float_digits",
                    f"logfile = {self.workdir / 'pgbouncer.log'}",
                    "admin_users = postgres",
                    "",
                ]
            )
        )
        command = [self.binary]
        if os.geteuid() == 0:
            os.chmod(self.workdir, 0o777)
            for path in self.workdir.iterdir():
                os.chmod(path, 0o666)
            command += ["-u", "postgres"]
        self.process = subprocess.Popen(
            [*command, str(ini)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.workdir
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                self.stop()
                raise RuntimeError(f"pgbouncer did not start on port {self.port}: {err}\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        path = self.workdir / "pgbouncer.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"

    def stop(self) -> None:
        """SIGTERM the process by its pid (SIGKILL if it lingers) and remove its directory."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if process is not None and process.stderr is not None:
            process.stderr.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
