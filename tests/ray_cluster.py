"""A real local Ray cluster for tests and benchmarks: a head and worker nodes, each a separate
`ray start --block` process (its own session, so one node can be killed alone), on 127.0.0.1
with explicit ports (never 6379, Redis's), no dashboard, no usage stats, a short temp dir (Ray's
Unix socket paths must stay under ~100 bytes).

    cluster = RayCluster(workers=2).start()
    ... cluster.address ...            # "127.0.0.1:PORT" for ray.init / --ray-address
    cluster.kill_node(1)               # SIGKILL a worker node's processes
    cluster.restart_node(1)            # and start it again
    cluster.stop()                     # every node, then checks that no process is left
"""

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

RAY = str(Path(sys.executable).with_name("ray"))
# Ports per node: GCS (head only), node manager, object manager, dashboard agent (2), runtime
# env agent, metrics, ray client (head only); workers take a range of their own.
_PORTS_PER_NODE = 8
_WORKER_PORTS_PER_NODE = 40


def _free_base(count: int) -> int:
    """A base port with `count` free ports above it (checked by binding each)."""
    for base in range(23000, 60000, 997):
        if all(_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free block of ports for the Ray test cluster")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class RayCluster:
    """`workers` worker nodes plus the head, `cpus` CPUs each (the head `head_cpus`, default
    the same); `env` is added to every node's environment (its Ray workers inherit it)."""

    def __init__(
        self,
        workers: int = 2,
        cpus: int = 1,
        env: dict[str, str] | None = None,
        head_cpus: int | None = None,
    ):
        self.workers, self.cpus = workers, cpus
        self.head_cpus = cpus if head_cpus is None else head_cpus  # 0: the head runs no task
        self.temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
        nodes = workers + 1
        self._base = _free_base(nodes * (_PORTS_PER_NODE + _WORKER_PORTS_PER_NODE))
        self.port = self._base
        self.address = f"127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "RAY_memory_monitor_refresh_ms": "0",
            "RAY_USAGE_STATS_ENABLED": "0",
            **(env or {}),
        }
        self.nodes: list[subprocess.Popen] = []

    def _command(self, index: int) -> list[str]:
        first = self._base + index * _PORTS_PER_NODE
        workers_from = self._base + (self.workers + 1) * _PORTS_PER_NODE
        workers_from += index * _WORKER_PORTS_PER_NODE
        command = [
            RAY,
            "start",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={self.head_cpus if index == 0 else self.cpus}",
            "--num-gpus=0",
            "--disable-usage-stats",
            f"--temp-dir={self.temp_dir}",
            f"--node-manager-port={first + 1}",
            f"--object-manager-port={first + 2}",
            f"--dashboard-agent-listen-port={first + 3}",
            f"--dashboard-agent-grpc-port={first + 4}",
            f"--runtime-env-agent-port={first + 5}",
            f"--metrics-export-port={first + 6}",
            f"--min-worker-port={workers_from}",
            f"--max-worker-port={workers_from + _WORKER_PORTS_PER_NODE - 1}",
            "--object-store-memory=80000000",
            "--include-log-monitor=false",
        ]
        if index == 0:
            command += [
                "--head",
                f"--port={self.port}",
                "--include-dashboard=false",
                f"--ray-client-server-port={first + 7}",
            ]
        else:
            command.append(f"--address={self.address}")
        return command

    def _log(self, index: int) -> Path:
        return Path(self.temp_dir) / f"node-{index}.log"

    def _launch(self, index: int) -> subprocess.Popen:
        with self._log(index).open("wb") as out:
            return subprocess.Popen(
                self._command(index),
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start(self, timeout_s: float = 120.0) -> RayCluster:
        """Start the head, then each worker node in turn (starting them together overloads
        two cores: Ray gives a node 30 s to register); return once every node is up."""
        try:
            for index in range(self.workers + 1):
                self.nodes.append(self._launch(index))
                self._up_or_again(index, timeout_s)
        except BaseException:
            self.stop(check=False)
            raise
        return self

    def _up_or_again(self, index: int, timeout_s: float, attempts: int = 3) -> None:
        """Wait for node `index`; on a loaded machine Ray's fixed 30 s for a node to register
        can run out, so a node that gave up is killed and started again."""
        for attempt in range(attempts):
            try:
                self._wait_until_up(index, timeout_s)
                return
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                self.kill_node(index)
                self.nodes[index] = self._launch(index)

    def _wait_until_up(self, index: int, timeout_s: float) -> None:
        """Until `ray start --block` of node `index` says the node runs (it registered with
        the GCS)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.nodes[index].poll() is not None:
                raise RuntimeError(f"Ray node {index} exited: {self.log_tail(index)}")
            with contextlib.suppress(OSError):
                if "Ray runtime started" in self._log(index).read_text(errors="replace"):
                    return
            time.sleep(0.2)
        raise TimeoutError(f"Ray node {index} did not come up: {self.log_tail(index)}")

    def kill_node(self, index: int) -> None:
        """SIGKILL every process of node `index` (1..workers): its raylet and its Ray workers
        (a dying machine), leaving the others running."""
        node = self.nodes[index]
        for process in self._processes(node.pid):
            with contextlib.suppress(psutil.Error):
                process.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGKILL)
        node.wait(10)

    def restart_node(self, index: int, timeout_s: float = 120.0) -> None:
        """Start worker node `index` again (after kill_node) and wait until it is up."""
        if self.nodes[index].poll() is None:
            return
        self.nodes[index] = self._launch(index)
        self._up_or_again(index, timeout_s)

    def _processes(self, pid: int) -> list[psutil.Process]:
        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def leftover_processes(self) -> list[str]:
        """Processes of this cluster still alive (their command line names its temp dir)."""
        found = []
        for process in psutil.process_iter(["pid", "cmdline"]):
            cmdline = " ".join(process.info["cmdline"] or [])
            if self.temp_dir in cmdline or any(
                str(node.pid) == str(process.info["pid"]) for node in self.nodes
            ):
                found.append(f"{process.info['pid']}: {cmdline[:120]}")
        return found

    def stop(self, check: bool = True, grace_s: float = 5.0) -> None:
        """Stop every node (SIGTERM to each `ray start --block` process group, SIGKILL to
        whatever of the cluster is left after `grace_s`), remove the temp dir; with `check`,
        raise if a process of the cluster is still alive after that."""
        for node in reversed(self.nodes):
            if node.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.pid, signal.SIGTERM)
        self._wait_gone(time.monotonic() + grace_s)
        for node in self.nodes:
            for process in self._processes(node.pid):
                with contextlib.suppress(psutil.Error):
                    process.kill()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGKILL)
        for line in self.leftover_processes():
            with contextlib.suppress(psutil.Error, ValueError):
                psutil.Process(int(line.split(":", 1)[0])).kill()
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(5)
        left = self._wait_gone(time.monotonic() + 5.0)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        if check and left:
            raise AssertionError(f"Ray processes outlived the cluster's stop: {left}")

    def _wait_gone(self, deadline: float) -> list[str]:
        while True:
            left = self.leftover_processes()
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.3)

    def log_tail(self, index: int = 0, lines: int = 30) -> str:
        try:
            text = self._log(index).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
