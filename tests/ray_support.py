"""A real Ray cluster on this machine for the tests: a head and worker nodes, each a `ray start --block`
process of its own (its raylet, object store and workers die with it), stopped by the pids started here."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from tests.watch_support import wait_for

RAY = str(Path(sys.executable).with_name("ray"))
NODE_ARGS = ["--block", "--disable-usage-stats", "--object-store-memory", str(80 * 1024 * 1024)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """`ray start --head` and `ray start --address` here, with small --num-cpus and object stores."""

    def __init__(self, cpus_per_node: int = 1, env: dict | None = None) -> None:
        self.cpus = cpus_per_node
        self.env = {**os.environ, **(env or {}), "RAY_USAGE_STATS_ENABLED": "0"}
        # Short: Ray's unix sockets live under it (at most 107 bytes each).
        self.temp = Path(tempfile.mkdtemp(prefix="rayt", dir="/tmp"))
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[subprocess.Popen] = []

    def _start(self, args: list[str], name: str, env: dict | None = None) -> subprocess.Popen:
        log = (self.temp / f"{name}.log").open("w")
        proc = subprocess.Popen(
            [RAY, "start", *args, *NODE_ARGS, "--num-cpus", str(self.cpus)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env or self.env,
            start_new_session=True,  # its own process group: the teardown's fallback kills only it
        )
        log.close()
        self.nodes.append(proc)
        return proc

    def start(self, nodes: int = 2) -> LocalCluster:
        head = [
            "--head",
            "--port",
            str(self.port),
            "--include-dashboard=false",
            "--temp-dir",
            str(self.temp),
        ]
        try:
            self._start(head, "head")
            self._wait_started("head")
            for i in range(1, nodes):
                self.add_node(f"node{i}")
            self.wait_for_nodes(nodes)
        except BaseException:
            self.stop()
            raise
        return self

    def add_node(self, name: str, env: dict | None = None) -> subprocess.Popen:
        """A worker node; its raylet listens on proc.node_manager_port (how ray.nodes() names it)."""
        port = _free_port()
        proc = self._start(["--address", self.address, "--node-manager-port", str(port)], name, env)
        proc.node_manager_port = port  # type: ignore[attr-defined]
        self._wait_started(name)
        return proc

    def _wait_started(self, name: str) -> None:
        log = self.temp / f"{name}.log"
        proc = self.nodes[-1]

        def started() -> bool:
            text = log.read_text(errors="replace")
            if proc.poll() is not None:
                raise AssertionError(f"ray start ({name}) exited {proc.returncode}:\n{text[-3000:]}")
            return "Ray runtime started" in text

        wait_for(started, 120, f"Ray node {name} to start")

    def alive_nodes(self) -> int:
        """Counted from a driver in a subprocess: the test's own process stays unconnected."""
        code = f"import ray; ray.init(address={self.address!r}, log_to_driver=False, logging_level=40); "
        code += "print(sum(n['Alive'] for n in ray.nodes()))"
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=self.env, timeout=120
        )
        return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else -1

    def wait_for_nodes(self, n: int) -> None:
        wait_for(lambda: self.alive_nodes() == n, 120, f"{n} live Ray nodes")

    def freeze_node(self, proc: subprocess.Popen) -> None:
        """Stop every process of a node (its raylet, store and workers, the actors too): what was sent
        there cannot finish, as on a machine that hangs."""
        for p in _tree(proc):
            p.send_signal(signal.SIGSTOP)

    def kill_node(self, proc: subprocess.Popen) -> None:
        """Kill every process of a node at once, as a machine that loses power. By pid: Ray's workers
        leave the node's process group, not its process tree."""
        tree = _tree(proc)
        for p in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(tree, timeout=30)
        proc.wait(timeout=30)
        self.nodes.remove(proc)

    def stop(self) -> None:
        for proc in reversed(self.nodes):
            _end(proc)
        self.nodes.clear()
        shutil.rmtree(self.temp, ignore_errors=True)


def _tree(proc: subprocess.Popen) -> list[psutil.Process]:
    try:
        top = psutil.Process(proc.pid)
        return [top, *top.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # ray start --block stops its raylet, store and workers
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    # Whatever of its group outlived it (a worker busy in C code) goes too: the group is this node's.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.1)
