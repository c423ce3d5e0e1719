"""Runs whose process is gone: killed `transferlab run`s are marked interrupted, not left
`running`, and leave no unfinished model folder behind. The bookkeeping itself (gone, reused
and foreign pids; unfinished folders) runs on a DuckDB file and a PostgreSQL database."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import transferlab_executable
from transferlab import Registry

MODEL_NAME = "tiny-killed"


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _start_long_finetune(tmp_path: Path, base: Path) -> tuple[subprocess.Popen, Path]:
    """A `transferlab run finetune` that trains for minutes; returns once its model folder
    exists (the run is then in training, inside its kernel)."""
    registry = tmp_path / "registry.duckdb"
    process = subprocess.Popen(
        [
            transferlab_executable(), "run", "finetune",
            "-p", "base", str(base), "-p", "max_steps", "100000", "-p", "batch_size", "8",
            "-p", "max_length", "32", "-p", "early_stopping_patience", "null",
            "-p", "name", MODEL_NAME,
            "--registry", str(registry), "--output-dir", str(tmp_path / "notebooks"), "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    models = tmp_path / "models" / MODEL_NAME
    _wait_for(
        lambda: process.poll() is not None or (models.is_dir() and any(models.iterdir())),
        240,
        "the run's model folder",
    )
    assert process.poll() is None, process.communicate()
    (folder,) = models.iterdir()
    return process, folder


def _runs_cli(registry: Path | str, *args: str) -> list[dict]:
    completed = subprocess.run(
        [transferlab_executable(), "runs", "--registry", str(registry), "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def _stop(process: subprocess.Popen, kernels: list[int]) -> None:
    """Clean up whatever a failing test left running."""
    if process.poll() is None:
        process.kill()
        process.wait()
    for pid in kernels:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.training
def test_a_run_killed_with_sigkill_is_marked_interrupted_by_the_next_command(
    tmp_path, tiny_bert_dir
):
    process, folder = _start_long_finetune(tmp_path, tiny_bert_dir)
    kernels = _children(process.pid)
    try:
        process.kill()  # SIGKILL: the run cannot record anything itself
        process.wait(timeout=30)
        # The kernel notices its parent is gone and exits by itself.
        _wait_for(lambda: not any(Path(f"/proc/{k}").exists() for k in kernels), 60, "kernel")
        registry = tmp_path / "registry.duckdb"
        assert folder.is_dir()  # still there: nobody has looked yet
        (run,) = _runs_cli(registry)
    finally:
        _stop(process, kernels)
    assert run["status"] == "interrupted"
    assert run["error"] == (
        f"Interrupted: process {process.pid} on {socket.gethostname()} ended without "
        "finishing the run."
    )
    assert run["pid"] == process.pid and run["host"] == socket.gethostname()
    assert run["finished_at"] is not None
    assert _runs_cli(registry, "--status", "running") == []
    assert not folder.exists() and not folder.parent.exists()  # models/<name>/<run> and above
    versions = Registry(registry).query(
        "SELECT * FROM model_versions WHERE run_id = ? OR model_name = ?",
        [run["run_id"], MODEL_NAME],
    )
    assert versions == []


@pytest.mark.training
def test_a_run_stopped_with_sigterm_records_itself_as_interrupted(tmp_path, tiny_bert_dir):
    process, folder = _start_long_finetune(tmp_path, tiny_bert_dir)
    kernels = _children(process.pid)
    try:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
        registry = Registry(tmp_path / "registry.duckdb")
        # Read straight from the registry: no later command had to clean up after it.
        (run,) = registry.query("SELECT run_id, status, error, finished_at FROM runs")
    finally:
        _stop(process, kernels)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "terminated (SIGTERM)" in err
    assert run["status"] == "interrupted" and run["finished_at"] is not None
    assert not folder.exists() and not folder.parent.exists()


def _started_elsewhere(registry: Registry, **columns) -> str:
    run_id = registry.start_run("finetune")
    assignments = ", ".join(f"{name} = ?" for name in columns)
    with registry.connect() as con:
        con.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", [*columns.values(), run_id])
    return run_id


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_reused_pid_does_not_keep_a_run_alive_and_other_hosts_are_left_alone(
    registry_location,
):
    registry = Registry(registry_location)
    mine = registry.start_run("finetune")  # this very process: alive, same start
    boot, namespace, _ = registry.get_run(mine)["process_start"].split("/")
    # Our pid, recorded for a process that started at another time (the pid was reused)...
    reused = _started_elsewhere(registry, process_start=f"{boot}/{namespace}/1")
    # ... before the machine last restarted ...
    rebooted = _started_elsewhere(registry, process_start=f"another-boot/{namespace}/1")
    # ... or in another pid namespace (a container with the same host name): not ours to judge.
    contained = _started_elsewhere(registry, pid=_dead_pid(), process_start=f"{boot}/pid:[1]/1")
    remote = _started_elsewhere(registry, host="another-host.example", pid=_dead_pid())
    dead = _started_elsewhere(registry, pid=_dead_pid())
    statuses = {r["run_id"]: (r["status"], r["error"]) for r in _runs_cli(registry.location)}
    ended = f"Interrupted: process {{}} on {socket.gethostname()} ended without finishing the run"
    pid = os.getpid()
    assert statuses[mine] == statuses[contained] == statuses[remote] == ("running", None)
    assert statuses[reused] == (
        "interrupted",
        ended.format(pid) + f" (pid {pid} now belongs to another process).",
    )
    assert statuses[rebooted] == (
        "interrupted",
        ended.format(pid) + " (the machine has restarted since).",
    )
    dead_pid = registry.get_run(dead)["pid"]
    assert statuses[dead] == ("interrupted", ended.format(dead_pid) + ".")


def test_listing_runs_with_none_running_leaves_the_file_untouched(tmp_path):
    registry = Registry(tmp_path / "registry.duckdb")
    registry.finish_run(registry.start_run("finetune"), "succeeded")
    before = (registry.path.read_bytes(), registry.path.stat().st_mtime_ns)
    assert [r["status"] for r in _runs_cli(registry.path)] == ["succeeded"]
    assert (registry.path.read_bytes(), registry.path.stat().st_mtime_ns) == before


def _finetune_run(registry: Registry, folder: Path, files: dict[str, str]) -> str:
    run_id = registry.start_run("finetune")
    registry.update_run(run_id, parameters={"output_dir": str(folder)})
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return run_id


@pytest.mark.parametrize(
    ("files", "registered", "removed"),
    [
        ({}, False, True),  # interrupted before anything was saved
        ({"adapter_model.safetensors": "half"}, False, True),  # save cut short
        ({"adapter_model.safetensors": "w", "transferlab.json": "{}"}, False, False),  # done
        ({"adapter_model.safetensors": "w"}, True, False),  # a registered version's weights
    ],
)
def test_an_interrupted_finetune_removes_only_an_unfinished_model_folder(
    tmp_path, registry_location, files, registered, removed
):
    from transferlab import ModelRecord

    registry = Registry(registry_location, models_dir=tmp_path / "models")
    folder = tmp_path / "models" / "tiny-x" / "run-1"
    run_id = _finetune_run(registry, folder, files)
    if registered:
        registry.upsert_models(
            [ModelRecord(name="tiny-x", source="local", source_ref=str(folder), task="t")]
        )
        registry.add_version("tiny-x", "adapter", str(folder), run_id=run_id)
    registry.finish_run(run_id, "interrupted", error="interrupted")
    assert folder.exists() is not removed
    assert folder.parent.exists() is not removed
    assert (tmp_path / "models").is_dir()  # the models folder itself stays
