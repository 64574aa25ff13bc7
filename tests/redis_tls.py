"""A throwaway Redis over TLS for tests: certificates made with ``openssl``, ``redis-server --tls-port``.

:func:`make_certificates` writes a CA, a server certificate it signed (for
``127.0.0.1`` and ``localhost``) and a second, unrelated CA into a directory.
:class:`LocalTLSRedis` starts ``redis-server --port 0 --tls-port N`` (TLS
only, clients not asked for certificates) on a free loopback port and stops
it by its pid. Debian's redis-server is built with TLS.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .pgbouncer import free_port


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    other_ca: Path
    """A CA that signed nothing the server shows: trusting only it must fail verification."""


def require_binaries() -> tuple[str, str]:
    server, openssl = shutil.which("redis-server"), shutil.which("openssl")
    if server is None or openssl is None:
        message = "a Redis TLS test needs redis-server and openssl: apt-get install -y redis-server openssl"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return server, openssl


def _openssl(openssl: str, *args: str | Path) -> None:
    subprocess.run([openssl, *map(str, args)], check=True, capture_output=True, timeout=60)


def make_certificates(directory: Path) -> Certificates:
    """A CA, a server certificate for 127.0.0.1/localhost signed by it, and an unrelated CA."""
    _, openssl = require_binaries()
    directory.mkdir(parents=True, exist_ok=True)
    d = directory
    for name in ("ca", "other-ca"):
        _openssl(
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=sessionware {name}",
            "-keyout", d / f"{name}.key", "-out", d / f"{name}.crt",
        )  # fmt: skip
    _openssl(
        openssl, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", d / "server.key", "-out", d / "server.csr",
    )  # fmt: skip
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        openssl, "x509", "-req", "-in", d / "server.csr", "-CA", d / "ca.crt", "-CAkey", d / "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", d / "server.ext", "-out", d / "server.crt",
    )  # fmt: skip
    return Certificates(d / "ca.crt", d / "server.crt", d / "server.key", d / "other-ca.crt")


class LocalTLSRedis:
    """One ``redis-server`` speaking only TLS on a free loopback port."""

    def __init__(self, workdir: Path, certs: Certificates) -> None:
        self.server, _ = require_binaries()
        self.workdir = workdir
        self.certs = certs
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, *, ca: Path | None = None, db: int = 0) -> str:
        return f"rediss://127.0.0.1:{self.port}/{db}?ssl_ca_certs={ca or self.certs.ca}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = {
            "port": 0,
            "tls-port": self.port,
            "tls-cert-file": self.certs.server_cert,
            "tls-key-file": self.certs.server_key,
            "tls-ca-cert-file": self.certs.ca,
            "tls-auth-clients": "no",
            "bind": "127.0.0.1",
            "dir": self.workdir,
            "logfile": "redis.log",
            "save": "",
            "appendonly": "no",
            "daemonize": "no",
        }
        self.process = subprocess.Popen(
            [self.server, *(a for name, value in args.items() for a in (f"--{name}", str(value)))],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            probe = subprocess.run(
                ["redis-cli", "--tls", "--cacert", str(self.certs.ca), "-h", "127.0.0.1", "-p", str(self.port), "ping"],
                capture_output=True,
                timeout=10,
            )
            if probe.stdout.strip() == b"PONG":
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.workdir / "redis.log"
                text = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
                self.stop()
                raise RuntimeError(f"redis-server with TLS did not start on {self.port}:\n{text}")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(10)
