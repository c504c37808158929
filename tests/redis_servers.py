"""Real redis-server processes for the rate-limit tests: single servers that can be stopped,
paused and restarted on the same port, and a 3-node Redis Cluster."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from .conftest import free_port


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (Debian: apt-get install -y redis-server)")
    return path


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server on a loopback port, which a test may stop, pause and start again."""

    def __init__(self, port: int | None = None, *extra: str) -> None:
        self.port = port or free_port()
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir = tempfile.mkdtemp(prefix="asgi-guard-redis-")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                _binary("redis-server"),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _ping(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                pytest.fail(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers (a hung server)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


class RedisCluster:
    """Three masters with ``--cluster-enabled yes`` joined by ``redis-cli --cluster create``."""

    def __init__(self) -> None:
        self.nodes: list[RedisServer] = []

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> RedisCluster:
        try:
            return self._start()
        except BaseException:
            self.stop()  # no node outlives a failed start
            raise

    def _start(self) -> RedisCluster:
        for _ in range(3):
            # The bus port is set too: by default it is the port + 10000, which may be taken.
            node = RedisServer(None, "--cluster-enabled", "yes", "--cluster-node-timeout", "2000")
            node.extra += (
                "--cluster-config-file",
                os.path.join(node.dir, "nodes.conf"),
                "--cluster-port",
                str(free_port()),
            )
            self.nodes.append(node.start())
        subprocess.run(
            [
                _binary("redis-cli"),
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        deadline = time.monotonic() + 20
        while not all(self._ok(n.port) for n in self.nodes):
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail("the Redis Cluster did not become ready")
            time.sleep(0.1)
        return self

    @staticmethod
    def _ok(port: int) -> bool:
        out = subprocess.run(
            [_binary("redis-cli"), "-p", str(port), "cluster", "info"],
            capture_output=True,
            timeout=10,
        ).stdout
        return b"cluster_state:ok" in out

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
