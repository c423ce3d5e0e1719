"""Warm kernels (transferlab.warm_kernels): a sweep worker starts the next run's kernel during a
run, forked from a zygote that imported the template's modules once (transferlab.forked_kernels);
each kernel serves one run, nothing of one run reaches the next, a stopped or killed sweep
leaves no kernel or zygote behind, a spare that died or no longer fits gives way to a cold
kernel, and a zygote that cannot fork safely (or zygotes turned off) gives way to a warmed one.

A light template (no torch) records what its kernel sees, then leaves a variable and a module
attribute behind for the next run to find, if it could."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from datetime import UTC
from pathlib import Path

import nbformat
import psutil
import pytest

from tests.conftest import transferlab_executable, write_template
from transferlab import Registry, forked_kernels, warm_kernels
from transferlab.runner import run_template
from transferlab.sweeps import parse_sweep, run_sweep

pytestmark = pytest.mark.training

RECORD = """\
import json, os, sys, time
preloaded = "psutil" in sys.modules  # imported before this cell ran
import psutil


def started_epoch(process):
    # A process's start on time.time()'s clock: psutil counts from /proc/stat's boot
    # time, which is whole seconds (so up to 1 s early).
    with open("/proc/uptime") as f:
        booted = time.time() - float(f.read().split()[0])
    return process.create_time() - psutil.boot_time() + booted


record = {
    "leak": "leak" in globals(),
    "module_leak": hasattr(sys.modules["json"], "transferlab_leak"),
    "pid": os.getpid(),
    "kernel_started": started_epoch(psutil.Process()),
    "parent_started": started_epoch(psutil.Process().parent()),
    "cwd": os.getcwd(),
    "threads": os.environ.get("OMP_NUM_THREADS"),
    "parent": psutil.Process().ppid(),
    "parent_command": " ".join(psutil.Process().parent().cmdline()),
    "preloaded": preloaded,
}
leak = 1
sys.modules["json"].transferlab_leak = 1
with open(record_file, "w") as f:
    json.dump(record, f)
while gate and not os.path.exists(gate):
    time.sleep(0.1)
"""


def _template(folder: Path) -> Path:
    return write_template(folder / "light.ipynb", "record_file = 'x.json'\ngate = ''\n", RECORD)


def _records(folder: Path, count: int) -> list[dict]:
    return [json.loads((folder / f"r{i}.json").read_text()) for i in range(count)]


def _run_light(
    template: Path, registry: Registry, folder: Path, index: int, warm_next: bool
) -> tuple[dict, float]:
    """One `run_template` of the light template writing r{index}.json: (its record, the
    epoch its run started at)."""
    outcome = run_template(
        str(template),
        {"record_file": str(folder / f"r{index}.json")},
        registry=registry,
        output_dir=folder / "nb",
        progress_bar=False,
        warm_next=warm_next,
    )
    assert outcome.succeeded, outcome.error
    record = json.loads((folder / f"r{index}.json").read_text())
    return record, _epoch(registry.get_run(outcome.run_id)["started_at"])


def _in_order(runs: list[dict]) -> list[dict]:
    return sorted(runs, key=lambda run: run["requested"]["record_file"])


def _epoch(naive_utc) -> float:
    return naive_utc.replace(tzinfo=UTC).timestamp()


def _kernels_of(pid: int) -> list[psutil.Process]:
    """Started kernels, and forked ones (a zygote's children)."""
    zygotes = _zygotes_of(pid)
    started, forked = [], []
    for child in _descendants(pid):
        if "ipykernel_launcher" in " ".join(_cmdline(child)):
            started.append(child)
    for zygote in zygotes:
        forked += _descendants(zygote.pid)
    return started + forked


def _zygotes_of(pid: int) -> list[psutil.Process]:
    found = [c for c in _descendants(pid) if "kernel_zygote" in " ".join(_cmdline(c))]
    # a forked kernel has its zygote's command line: a zygote's parent is not a zygote
    return [z for z in found if z.ppid() not in {f.pid for f in found}]


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _two(kernels: list[psutil.Process]) -> list[psutil.Process] | None:
    return kernels if len(kernels) == 2 else None


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_sweep_hands_each_run_a_kernel_warmed_during_the_previous_one(tmp_path):
    spec = parse_sweep(
        {
            "name": "warm",
            "template": str(_template(tmp_path)),
            "grid": {"record_file": [str(tmp_path / f"r{i}.json") for i in range(3)]},
        }
    )
    registry = Registry(tmp_path / "registry.duckdb")
    result = run_sweep(spec, registry, workers=1, output_dir=tmp_path / "nb", progress=False)
    assert [row.status for row in result.rows] == ["succeeded"] * 3, result.rows

    records = _records(tmp_path, 3)
    runs = _in_order(registry.sweep_runs("warm"))
    # Nothing a run left behind reaches the next: not a variable, not a module's attribute.
    assert [(r["leak"], r["module_leak"]) for r in records] == [(False, False)] * 3
    assert len({r["pid"] for r in records}) == 3  # one kernel per run
    # The first run's kernel came from a zygote started with the worker, before the run
    # began; the others got their kernel before they began.
    started = [_epoch(run["started_at"]) for run in runs]
    assert records[0]["parent_started"] < started[0]
    assert records[1]["kernel_started"] < started[1]
    assert records[2]["kernel_started"] < started[2]
    # All were forked from one zygote (the first too: no cold kernel beside the zygote doing
    # the same imports), which had imported the template's modules.
    assert all("kernel_zygote" in r["parent_command"] for r in records)
    assert len({r["parent"] for r in records}) == 1
    assert all(r["preloaded"] for r in records)
    # ... which sees what a cold one would: the output folder, the worker's thread settings.
    assert {r["cwd"] for r in records} == {str((tmp_path / "nb").resolve())}
    assert {r["threads"] for r in records} == {str(result.threads_per_worker)}
    # The warm-up is invisible in the notebook: the first cell is execution 1.
    notebook = nbformat.read(runs[1]["output_notebook"], as_version=4)
    assert [c.execution_count for c in notebook.cells if c.cell_type == "code"] == [1, 2, 3]
    # No kernel or zygote outlives the sweep (the last run warms none: no more runs follow).
    _, alive = psutil.wait_procs(
        _processes([r["pid"] for r in records] + [records[1]["parent"]]), 10
    )
    assert alive == []


def _processes(pids: list[int]) -> list[psutil.Process]:
    found = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            found.append(psutil.Process(pid))
    return found


def test_cold_kernels_start_with_their_runs(tmp_path, run_cli):
    template = _template(tmp_path)
    sweep = tmp_path / "cold.yaml"
    files = ", ".join(str(tmp_path / f"r{i}.json") for i in range(2))
    sweep.write_text(f"template: {template}\ngrid: {{record_file: [{files}]}}\n")
    registry = tmp_path / "registry.duckdb"
    code, out, err = run_cli(
        "sweep", sweep, "--registry", registry, "--output-dir", tmp_path / "nb",
        "--workers", "1", "--cold-kernels", "--json",
    )  # fmt: skip
    assert code == 0, err
    runs = _in_order(Registry(registry).sweep_runs("cold"))
    for record, run in zip(_records(tmp_path, 2), runs, strict=True):
        assert record["kernel_started"] >= _epoch(run["started_at"]) - 0.05


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_or_killed_sweep_leaves_no_kernel_behind(tmp_path, stop):
    template = _template(tmp_path)
    gate = tmp_path / "never"
    sweep = tmp_path / "stopped.yaml"
    files = ", ".join(str(tmp_path / f"r{i}.json") for i in range(3))
    sweep.write_text(f"template: {template}\nfixed: {{gate: {gate}}}\n")
    sweep.write_text(sweep.read_text() + f"grid: {{record_file: [{files}]}}\n")
    process = subprocess.Popen(
        [
            transferlab_executable(), "sweep", str(sweep), "--registry",
            str(tmp_path / "registry.duckdb"), "--output-dir", str(tmp_path / "nb"),
            "--workers", "1", "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        # The first run waits at its gate while the spare for the second is up.
        _wait_for(lambda: (tmp_path / "r0.json").exists(), 120, "the first run")
        kernels = _wait_for(lambda: _two(_kernels_of(process.pid)), 60, "the spare kernel")
        zygotes = _zygotes_of(process.pid)
        assert len(zygotes) == 1  # the spare was forked
        workers = psutil.Process(process.pid).children()
        process.send_signal(stop)
        process.communicate(timeout=120)
        everything = [*kernels, *zygotes, *workers]
        _, alive = psutil.wait_procs(everything, timeout=30)
        assert alive == []
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        for leftover in [*_kernels_of(process.pid), *_zygotes_of(process.pid)]:
            leftover.kill()


def test_a_spare_that_died_or_does_not_fit_gives_way_to_a_cold_kernel(tmp_path, monkeypatch):
    template = _template(tmp_path)
    registry = Registry(tmp_path / "registry.duckdb")

    def run(index: int, warm_next: bool):
        record, started = _run_light(template, registry, tmp_path, index, warm_next)
        return record, record["kernel_started"] < started  # warm?

    try:
        assert not run(0, warm_next=True)[1]
        assert run(1, warm_next=True)[1]
        threads = threading.active_count()
        assert run(2, warm_next=True)[1]
        # A handed kernel's clients are stopped with it: a long-lived worker gains no threads
        # (fewer is fine: a thread of the first runs may still be ending when counted).
        assert threading.active_count() <= threads

        assert warm_kernels.spare_ready(timeout=60)
        (spare,) = _kernels_of(os.getpid())
        spare.kill()  # killed (out of memory, say) while waiting for its run
        spare.wait(10)
        record, warm = run(3, warm_next=True)
        assert not warm and record["pid"] != spare.pid

        assert warm_kernels.spare_ready(timeout=60)
        monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the spare started with other settings
        record, warm = run(4, warm_next=False)
        assert not warm and record["threads"] == "3"
        assert _kernels_of(os.getpid()) == []  # the misfit spare was shut down
    finally:
        warm_kernels.discard()
        forked_kernels.close()


SLOW_CELL = """\
time.sleep(1.5)  # the run's longest cell
with open(record_file + ".slow-ended", "w") as f:
    f.write(repr(time.time()))
"""


def test_the_next_kernel_starts_once_the_longest_cell_of_the_previous_run_ended(tmp_path):
    """Its start would take CPU from that cell (a sweep run's training); the cells after it
    leave a core idle. With no earlier run to go by, it starts with the run."""
    template = _template(tmp_path)
    notebook = nbformat.read(template, as_version=4)
    notebook.cells += [nbformat.v4.new_code_cell(SLOW_CELL), nbformat.v4.new_code_cell("1")]
    nbformat.write(notebook, template)
    registry = Registry(tmp_path / "registry.duckdb")
    try:
        records, starts = [], []
        for index in range(3):
            record, started = _run_light(template, registry, tmp_path, index, index < 2)
            records.append(record)
            starts.append(started)
        slow_ended = [float((tmp_path / f"r{i}.json.slow-ended").read_text()) for i in range(2)]
        # Run 1's kernel: started during run 0, before its slow cell ended (no history yet).
        assert records[1]["kernel_started"] < slow_ended[0] - 1.0
        # Run 2's: started once run 1's slow cell had ended, and still before run 2 began.
        assert slow_ended[1] - 0.5 < records[2]["kernel_started"] < starts[2]
        assert len({r["pid"] for r in records}) == 3
    finally:
        warm_kernels.discard()
        forked_kernels.close()


THREAD_AT_IMPORT = """\
import threading, time
threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
"""


@pytest.mark.parametrize("case", ["thread at import", "zygotes off"])
def test_without_a_zygote_the_spare_is_a_warmed_kernel(tmp_path, monkeypatch, case):
    if case == "thread at import":  # forking then would be unsafe: the zygote refuses
        (tmp_path / "lib").mkdir()
        (tmp_path / "lib" / "starts_a_thread.py").write_text(THREAD_AT_IMPORT)
        path = os.environ.get("PYTHONPATH", "")
        monkeypatch.setenv(
            "PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path / "lib"), path]))
        )
        body = "import starts_a_thread\n" + RECORD
    else:
        monkeypatch.setenv("TRANSFERLAB_KERNEL_ZYGOTE", "0")
        body = RECORD
    template = write_template(tmp_path / "light.ipynb", "record_file = 'x.json'\ngate = ''\n", body)
    registry = Registry(tmp_path / "registry.duckdb")
    try:
        records = []
        for index in range(2):
            record, started = _run_light(template, registry, tmp_path, index, index == 0)
            records.append(record)
            assert index or warm_kernels.spare_ready(timeout=60)
        assert records[1]["kernel_started"] < started  # warm
        assert records[1]["parent"] == os.getpid()  # started by this process, not forked
        assert _zygotes_of(os.getpid()) == []
    finally:
        warm_kernels.discard()
        forked_kernels.close()
