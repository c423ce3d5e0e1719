"""`--executor ray` on a real local Ray cluster: a head and two worker nodes, each a separate
process on 127.0.0.1 (tests/ray_cluster.py), started once for the module and checked to leave
no process behind; the registry shared through PostgreSQL (and once the registry service).

Runs of a light template that sleeps; a worker node killed mid-sweep (its runs retried under new
run ids, none left `running`); the driver killed mid-sweep (the next invocation resumes); the
refusals (no ray, a cluster that does not answer, a DuckDB file with nodes elsewhere)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import transferlab_executable, write_template
from transferlab import Registry
from transferlab.errors import TransferlabError

pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.training]


@pytest.fixture(scope="module")
def whole_cluster():
    from tests.ray_cluster import RayCluster

    started = RayCluster(workers=2, cpus=1).start()
    try:
        yield started
    finally:
        started.stop()  # raises if a process of the cluster outlived it


@pytest.fixture
def cluster(whole_cluster):
    """The module's cluster with every node up (a node a test killed is started again)."""
    for index in range(1, len(whole_cluster.nodes)):
        whole_cluster.restart_node(index)
    return whole_cluster


def _sleep_template(path: Path) -> Path:
    """Sleeps `sleep_s`, or until the file `gate` exists when one is given; records where it
    ran (the Ray node's process) in its output."""
    body = (
        "import os, pathlib, time\n"
        "deadline = time.time() + (120 if gate else sleep_s)\n"
        "while time.time() < deadline and not (gate and pathlib.Path(gate).exists()):\n"
        "    time.sleep(0.2)\n"
        "print('seed', seed, 'threads', os.environ.get('OMP_NUM_THREADS'))"
    )
    parameters = "run_id = None\nregistry_path = None\nseed = 0\nsleep_s = 0.0\ngate = ''"
    return write_template(path, parameters, body)


def _sweep_file(folder: Path, name: str, body: str) -> Path:
    template = _sleep_template(folder / "sleepy.ipynb")
    path = folder / f"{name}.yaml"
    path.write_text(f"template: {template}\n{body}", encoding="utf-8")
    return path


def _gated(gate: Path) -> str:
    return f"fixed: {{gate: '{gate}'}}\ngrid: {{seeds: [0, 1]}}\n"


def _cli(args: list) -> list[str]:
    return [transferlab_executable(), *map(str, args)]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **extra}


def _sweep(sweep: Path, registry: str, folder: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        _cli(["sweep", sweep, "--registry", registry, "--output-dir", folder, "--json", *extra]),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )


@contextlib.contextmanager
def _background(sweep: Path, registry: str, folder: Path, *extra: str):
    process = subprocess.Popen(
        _cli(["sweep", sweep, "--registry", registry, "--output-dir", folder, "--json", *extra]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=60)


def _wait_for(predicate, timeout_s: float = 120.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("timed out waiting")


def _running(location: str) -> list[dict]:
    try:
        return Registry(location).runs(status="running")
    except Exception:
        return []


def test_a_sweep_over_the_cluster_records_every_run_with_its_notebook(
    cluster, postgres_location, tmp_path
):
    sweep = _sweep_file(
        tmp_path,
        "spread",
        f"executor: {{name: ray, address: '{cluster.address}'}}\n"
        "resources: {cpus: 1, memory_gb: 0.1}\n"
        "fixed: {sleep_s: 1.0}\ngrid: {seeds: [0, 1, 2]}\n",
    )
    folder = tmp_path / "notebooks"
    completed = _sweep(sweep, postgres_location, folder)
    assert completed.returncode == 0, completed.stderr
    summary = json.loads(completed.stdout)
    assert summary["executor"] == "ray" and summary["counts"] == {"succeeded": 3}
    runs = Registry(postgres_location).sweep_runs("spread")
    assert sorted(r["status"] for r in runs) == ["succeeded"] * 3
    for run in runs:
        notebook = Path(run["output_notebook"])
        assert notebook.parent == folder and notebook.is_file()
        assert "threads 1" in notebook.read_text()  # the run's cpus became its threads
    # Three runs on three one-CPU nodes ran in Ray workers, not in the sweep's own process.
    assert len({r["pid"] for r in runs}) >= 2
    assert Registry(postgres_location).get_sweep("spread")["pid"] not in {r["pid"] for r in runs}


def test_a_sweep_writes_through_the_registry_service(cluster, served_location, tmp_path):
    sweep = _sweep_file(tmp_path, "served", "grid: {seeds: [0, 1]}\n")
    completed = _sweep(
        sweep, served_location, tmp_path / "nb", "--ray-address", cluster.address, "-q"
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["counts"] == {"succeeded": 2}
    runs = Registry(served_location).sweep_runs("served")
    assert sorted(r["status"] for r in runs) == ["succeeded", "succeeded"]


def test_a_killed_driver_is_resumed_by_the_next_invocation(cluster, postgres_location, tmp_path):
    gate = tmp_path / "open"
    sweep = _sweep_file(tmp_path, "orphaned", _gated(gate))
    folder = tmp_path / "nb"
    with _background(sweep, postgres_location, folder, "--ray-address", cluster.address) as p:
        _wait_for(lambda: len(_running(postgres_location)) == 2)
        p.send_signal(signal.SIGKILL)  # no clean-up in the driver
        p.communicate(timeout=30)
    gate.touch()
    completed = _sweep(sweep, postgres_location, folder, "--ray-address", cluster.address)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["counts"] == {"succeeded": 2}
    registry = Registry(postgres_location)
    assert registry.runs(status="running") == []
    statuses = sorted(r["status"] for r in registry.runs())
    assert statuses == ["interrupted", "interrupted", "succeeded", "succeeded"]
    assert [s["status"] for s in registry.sweeps("orphaned")] == ["succeeded", "interrupted"]


def test_ctrl_c_interrupts_the_runs_on_the_cluster(cluster, postgres_location, tmp_path):
    gate = tmp_path / "never"
    sweep = _sweep_file(tmp_path, "stopped", _gated(gate))
    extra = ("--executor", "ray", "--ray-address", cluster.address)
    with _background(sweep, postgres_location, tmp_path / "nb", *extra) as p:
        _wait_for(lambda: len(_running(postgres_location)) == 2)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=90)
    assert p.returncode == 130, err
    assert json.loads(out)["status"] == "interrupted"
    registry = Registry(postgres_location)
    assert registry.runs(status="running") == []
    assert sorted(r["status"] for r in registry.runs()) == ["interrupted", "interrupted"]


def test_a_killed_worker_node_has_its_runs_retried_and_none_left_running(
    cluster, postgres_location, tmp_path
):
    sweep = _sweep_file(
        tmp_path,
        "unlucky",
        "fixed: {sleep_s: 6.0}\ngrid: {seeds: [0, 1, 2]}\n",
    )
    folder = tmp_path / "nb"
    with _background(sweep, postgres_location, folder, "--ray-address", cluster.address) as p:
        _wait_for(lambda: len(_running(postgres_location)) == 3)
        cluster.kill_node(2)  # started again by the `cluster` fixture of a later test
        out, err = p.communicate(timeout=240)
    assert p.returncode == 0, err
    summary = json.loads(out)
    assert summary["counts"] == {"succeeded": 3}
    registry = Registry(postgres_location)
    assert registry.runs(status="running") == []
    linked = registry.sweep_runs("unlucky")
    assert sorted(r["status"] for r in linked) == ["succeeded"] * 3
    every = registry.runs(sweep_id=registry.get_sweep("unlucky")["sweep_id"])
    dead = [r for r in every if r["status"] != "succeeded"]
    assert len(dead) >= 1 and {r["status"] for r in dead} == {"interrupted"}
    for run in dead:
        assert "Ray worker or node died" in run["error"] and "run again as" in run["error"]
    assert len(every) == 3 + len(dead)
    half = registry.query(
        "SELECT v.version_id FROM model_versions v JOIN runs r USING (run_id) "
        "WHERE r.status != 'succeeded'"
    )
    assert half == []


# -- refusals, before anything is written ---------------------------------------------------------


def test_a_cluster_that_does_not_answer_is_refused_before_anything_is_written(tmp_path, run_cli):
    sweep = _sweep_file(tmp_path, "nowhere", "grid: {seeds: [0]}\n")
    registry = tmp_path / "registry.duckdb"
    code, _, err = run_cli("sweep", sweep, "--registry", registry, "--ray-address", "127.0.0.1:9")
    assert code != 0
    assert "No Ray cluster answers at 127.0.0.1:9" in err and "--ray-address" in err
    assert not registry.exists()
    code, _, err = run_cli("sweep", sweep, "--registry", registry, "--ray-address", "nowhere")
    assert "is not auto, HOST:PORT or ray://HOST:PORT" in err and not registry.exists()
    code, _, err = run_cli(
        "sweep", sweep, "--registry", registry, "--executor", "process", "--ray-address", "auto"
    )
    assert "--ray-address is a setting of the ray executor" in err and not registry.exists()


def test_without_the_ray_package_the_error_says_how_to_install_it(tmp_path):
    hidden = tmp_path / "no_ray"
    (hidden / "ray").mkdir(parents=True)
    (hidden / "ray" / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    sweep = _sweep_file(tmp_path, "plain", "executor: ray\ngrid: {seeds: [0]}\n")
    registry = tmp_path / "registry.duckdb"
    path = os.pathsep.join(filter(None, [str(hidden), os.environ.get("PYTHONPATH")]))
    listed = subprocess.run(
        _cli(["executors"]), capture_output=True, text=True, env=_env(PYTHONPATH=path)
    )
    assert listed.returncode == 0 and "ray" in listed.stdout  # listing needs no ray
    completed = subprocess.run(
        _cli(["sweep", sweep, "--registry", registry]),
        capture_output=True,
        text=True,
        env=_env(PYTHONPATH=path),
    )
    assert completed.returncode != 0
    assert "needs the ray package" in completed.stderr
    assert "pip install -e '.[ray]'" in completed.stderr
    assert not registry.exists()


def test_a_duckdb_file_is_refused_when_a_node_is_on_another_machine(tmp_path):
    from transferlab.sweeps.executors.ray_connect import check_registry_reach

    here = [(os.uname().nodename, "127.0.0.1")]
    check_registry_reach(str(tmp_path / "registry.duckdb"), here)  # one machine: fine
    elsewhere = [*here, ("gpu-box-7", "10.0.0.7")]
    with pytest.raises(TransferlabError) as refused:
        check_registry_reach(str(tmp_path / "registry.duckdb"), elsewhere)
    assert "DuckDB file" in refused.value.problem and "gpu-box-7" in refused.value.problem
    assert "postgresql://" in refused.value.fix and "transferlab serve" in refused.value.fix
    with pytest.raises(TransferlabError, match="loopback"):
        check_registry_reach("postgresql://u@127.0.0.1:5432/db", elsewhere)
    check_registry_reach("postgresql://u@db.lab:5432/db", elsewhere)


@pytest.mark.parametrize(
    ("executor", "expected"),
    [
        ("{name: ray, adress: x}", "has no setting 'adress'"),
        ("{name: ray, max_retries: -1}", "max_retries must be a whole number"),
        ("{address: x}", "key executor.name"),
    ],
)
def test_bad_ray_settings_in_the_sweep_file_are_refused_with_their_line(
    tmp_path, executor, expected
):
    from transferlab.sweeps import SweepError, load_sweep

    sweep = _sweep_file(tmp_path, "badly", f"grid: {{seeds: [0]}}\nexecutor: {executor}\n")
    with pytest.raises(SweepError, match="line 3") as refused:
        load_sweep(sweep)
    assert expected in str(refused.value) + str(refused.value.fix)


def test_resources_must_be_numbers(tmp_path):
    from transferlab.sweeps import SweepError, load_sweep

    sweep = _sweep_file(tmp_path, "greedy", "grid: {seeds: [0]}\nresources: {cpus: lots}\n")
    with pytest.raises(SweepError, match="resources.cpus"):
        load_sweep(sweep)
    ok = _sweep_file(tmp_path, "modest", "grid: {seeds: [0]}\nresources: {cpus: 2, gpus: 0}\n")
    assert load_sweep(ok).resources.cpus == 2
