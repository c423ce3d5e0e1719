"""`transferlab sweep`: validation before any run, parallel runs, resume, failures, interrupts."""

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
from transferlab.sweeps import expand, load_sweep

LABELS = ("billing", "delivery", "refund")


def _write_data(path: Path, per_class: int = 16, label_column: str = "label") -> Path:
    lines = [f"text,{label_column}"]
    for label in LABELS:
        for i in range(per_class):
            lines.append(
                f"my {label} question number {i} about the {label} of order {i * 7},{label}"
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _write_yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _gate_template(path: Path) -> Path:
    """A light template: each run waits until a gate file exists (at most 120 s)."""
    body = (
        "import pathlib, time\n"
        "deadline = time.time() + 120\n"
        "while not pathlib.Path(gate).exists() and time.time() < deadline:\n"
        "    time.sleep(0.2)\n"
        "print('seed', seed, 'done')"
    )
    return write_template(path, "run_id = None\nregistry_path = None\ngate = None\nseed = 0", body)


# -- the sweep file, checked before anything runs ------------------------------------------------


def test_grid_expands_to_every_combination_with_stable_keys(tmp_path):
    _write_data(tmp_path / "a.csv")
    sweep = _write_yaml(
        tmp_path / "curve.yaml",
        "fixed: {max_steps: 2}\n"
        "grid:\n"
        "  methods: [lora, linear_probe]\n"
        "  n_per_class: [4, 8, all]\n"
        "  seeds: [0, 1]\n"
        "runs:\n"
        "  - {method: full, n_per_class: 4, data: a.csv}\n"
        "  - {method: lora, n_per_class: 4, seed: 0}\n",  # already in the grid: planned once
    )
    spec = load_sweep(sweep)
    assert spec.name == "curve" and spec.template == "finetune"
    runs = expand(spec)
    assert len(runs) == 2 * 3 * 2 + 1
    assert [r.parameters.get("n_per_class") for r in runs[:3]] == [4, 4, 8]
    assert {r.parameters["n_per_class"] for r in runs} == {4, 8, None}  # 'all' is None
    assert runs[-1].parameters["data"] == str((tmp_path / "a.csv").resolve())  # file's folder
    assert all(r.parameters["max_steps"] == 2 for r in runs)
    assert [r.key for r in expand(load_sweep(sweep))] == [r.key for r in runs]
    assert len({r.key for r in runs}) == len(runs)
    assert runs[0].label == "data=- method=lora n_per_class=4 seed=0"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "grid:\n  seeds: [0, 1]\n  learning_rat: [0.1]\n",
            [
                "line 3",
                "grid.learning_rat",
                "unknown parameter 'learning_rat'",
                "learning_rate",
                "n_per_class",
            ],
        ),
        ("grid: {}\n", ["key grid", "empty grid"]),
        ("grid:\n  seeds: []\n", ["line 2", "grid.seeds", "empty list"]),
        ("fixed: {max_steps: 2}\n", ["no grid and no runs"]),
        (
            "grid:\n  datasets: [missing/train.csv]\n",
            ["line 2", "grid.datasets[0]", "no data file", "missing/train.csv"],
        ),
        ("grid:\n  seeds: [0]\n  seed: [1]\n", ["grid.seed", "also varies under grid.seeds"]),
        ("fixed: {run_id: x}\ngrid: {seeds: [0]}\n", ["fixed.run_id", "unknown parameter"]),
        ("grid:\n  seeds: [0,\n", ["not valid YAML", "line"]),
    ],
)
def test_bad_sweep_files_are_refused_before_any_run(tmp_path, run_cli, text, expected):
    sweep = _write_yaml(tmp_path / "bad.yaml", text)
    registry = tmp_path / "registry.duckdb"
    code, out, err = run_cli("sweep", sweep, "--registry", registry)
    assert code == 2, out + err
    assert str(sweep) in err
    for part in expected:
        assert part in err, (part, err)
    assert not registry.exists() or Registry(registry).runs() == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "grid:\n  methods: [lora, lorra]\n",
            ["line 2", "grid.methods[1]", "Unknown fine-tuning method 'lorra'", "linear_probe"],
        ),
        (
            "fixed:\n  max_steps: 2\n  n_per_class: 0\ngrid: {seeds: [0, 1]}\n",
            ["line 3", "fixed.n_per_class", "Invalid n_per_class=0", ">= 1"],
        ),
        (
            "grid:\n  seeds: [0]\n  n_per_class: [4,\n    -3]\n",
            ["line 4", "grid.n_per_class[1]", "Invalid n_per_class=-3"],
        ),
        (
            "fixed:\n  n_per_class: 4\nruns:\n  - {n_train: 10}\n",
            ["line 4", "runs[0].n_train", "Both n_per_class=4 and n_train=10"],
        ),
        (
            "fixed:\n  max_steps: ten\ngrid: {seeds: [0]}\n",
            ["line 2", "fixed.max_steps", "max_steps='ten' is a text", "an int", "max_steps: 10"],
        ),
        (
            "grid:\n  learning_rate: [0.001, true]\n",
            ["line 2", "grid.learning_rate[1]", "is a bool", "a number"],
        ),
        (
            "grid:\n  seeds: [0]\nruns:\n  - {method: full, learning_rate: -1}\n",
            ["line 4", "runs[0].learning_rate", "Invalid learning_rate=-1"],
        ),
    ],
)
def test_a_dry_run_checks_every_runs_values_as_the_template_would(
    tmp_path, run_cli, text, expected
):
    sweep = _write_yaml(tmp_path / "values.yaml", text)
    registry = tmp_path / "registry.duckdb"
    for extra in (["--dry-run"], []):  # a real sweep checks the same before it starts
        code, out, err = run_cli("sweep", sweep, "--registry", registry, *extra)
        assert code == 2, out + err
        assert f"Sweep file {sweep}" in err
        for part in expected:
            assert part in err, (part, err)
    assert not registry.exists() or Registry(registry).runs() == []


@pytest.mark.parametrize("workers", ["0", "-2"])
def test_fewer_than_one_worker_is_refused(tmp_path, run_cli, workers):
    sweep = _write_yaml(tmp_path / "ok.yaml", "grid: {seeds: [0, 1]}\n")
    registry = tmp_path / "registry.duckdb"
    for extra in (["--dry-run"], []):
        code, out, err = run_cli(
            "sweep", sweep, "--workers", workers, "--registry", registry, *extra
        )
        assert code == 2, out + err
        assert f"error: --workers {workers}: a sweep needs at least one worker" in err
    assert not registry.exists()


# -- real runs: a tiny random BERT on tiny data ------------------------------------------------


@pytest.fixture(scope="module")
def finetune_sweep(tmp_path_factory, tiny_bert_dir):
    """A 4-run sweep with 2 workers: 3 sizes on good data, and one run on data without the
    label column, which fails."""
    folder = tmp_path_factory.mktemp("sweep")
    _write_data(folder / "good.csv")
    _write_data(folder / "bad.csv", label_column="category")
    sweep = _write_yaml(
        folder / "tiny.yaml",
        "name: tiny\n"
        "fixed:\n"
        f"  base: {tiny_bert_dir}\n"
        "  max_steps: 2\n"
        "  batch_size: 8\n"
        "  max_length: 32\n"
        "  early_stopping_patience: null\n"
        "grid:\n"
        "  datasets: [good.csv]\n"
        "  n_per_class: [4, 8, all]\n"
        "runs:\n"
        "  - {data: bad.csv, n_per_class: 4}\n",
    )
    registry = folder / "registry.duckdb"
    completed = _sweep_cli(sweep, registry, folder, "--workers", "2")
    return folder, sweep, registry, completed


def _sweep_cli(sweep: Path, registry: Path, folder: Path, *extra: str):
    return subprocess.run(
        [
            transferlab_executable(),
            "sweep",
            str(sweep),
            "--registry",
            str(registry),
            "--output-dir",
            str(folder / "notebooks"),
            "--no-report",
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TRANSFERLAB_OUTPUTS": str(folder / "outputs")},
    )


@pytest.mark.training
def test_a_sweep_records_every_run_and_isolates_the_failing_one(finetune_sweep):
    folder, _, registry_path, completed = finetune_sweep
    assert completed.returncode == 1, completed.stderr  # one run failed
    summary = json.loads(completed.stdout)
    assert summary["workers"] == 2 and summary["counts"] == {"succeeded": 3, "failed": 1}
    failed = [r for r in summary["runs"] if r["status"] == "failed"]
    assert failed[0]["parameters"]["data"].endswith("bad.csv")
    assert "label" in failed[0]["error"] and "category" in failed[0]["error"]
    registry = Registry(registry_path)
    rows = registry.sweep_runs("tiny")
    assert len(rows) == 4 and {r["sweep_id"] for r in rows} == {summary["sweep_id"]}
    assert sorted(r["status"] for r in rows) == ["failed", "succeeded", "succeeded", "succeeded"]
    for row in rows:  # each run its own output notebook, the failed one included
        assert Path(row["output_notebook"]).is_file()
        assert Path(row["output_notebook"]).parent == folder / "notebooks"
        assert row["requested"]["max_steps"] == 2
    sizes = sorted(
        (
            r["requested"]["n_per_class"] or 99,
            r["parameters"]["data"]["splits"]["train"]["examples"],
        )
        for r in rows
        if r["status"] == "succeeded"
    )
    assert [n for n, _ in sizes] == [4, 8, 99]
    assert [examples for _, examples in sizes[:2]] == [12, 24]
    made = registry.query(
        "SELECT v.version_id, r.status FROM model_versions v JOIN runs r USING (run_id)"
    )
    assert len(made) == 3 and {m["status"] for m in made} == {"succeeded"}
    sweep = registry.get_sweep("tiny")
    assert sweep["status"] == "failed" and sweep["summary"]["counts"]["failed"] == 1
    accuracy = [r["test_accuracy"] for r in summary["runs"] if r["status"] == "succeeded"]
    assert all(0 <= a <= 1 for a in accuracy)


@pytest.mark.training
def test_resume_skips_succeeded_runs_and_retries_the_failed_one(finetune_sweep, run_cli):
    folder, sweep, registry_path, _ = finetune_sweep
    # Dry runs plan without running: everything reused but the failure; --rerun forces all.
    code, out, _ = run_cli("sweep", sweep, "--registry", registry_path, "--dry-run", "--json")
    assert code == 0
    actions = {
        Path(r["parameters"]["data"]).name + str(r["parameters"]["n_per_class"]): r["action"]
        for r in json.loads(out)["runs"]
    }
    assert actions == {
        "good.csv4": "reuse",
        "good.csv8": "reuse",
        "good.csvNone": "reuse",
        "bad.csv4": "run",
    }
    code, out, _ = run_cli(
        "sweep", sweep, "--registry", registry_path, "--dry-run", "--rerun", "--json"
    )
    assert [r["action"] for r in json.loads(out)["runs"]] == ["run"] * 4

    _write_data(folder / "bad.csv")  # fix the failing data set, then resume
    completed = _sweep_cli(sweep, registry_path, folder, "--workers", "2")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    summary = json.loads(completed.stdout)
    assert summary["counts"] == {"reused": 3, "succeeded": 1}
    registry = Registry(registry_path)
    assert len(registry.sweeps("tiny")) == 2
    latest = registry.sweep_runs("tiny")  # the newest invocation: 3 reused + 1 new
    assert sorted(bool(r["reused"]) for r in latest) == [False, True, True, True]
    assert {r["status"] for r in latest} == {"succeeded"}

    # Same request, different examples: the data fingerprint no longer matches.
    _write_data(folder / "good.csv", per_class=17)
    code, out, _ = run_cli("sweep", sweep, "--registry", registry_path, "--dry-run", "--json")
    actions = {
        Path(r["parameters"]["data"]).name + str(r["parameters"]["n_per_class"]): r["action"]
        for r in json.loads(out)["runs"]
    }
    assert actions["bad.csv4"] == "reuse" and actions["good.csvNone"] == "run"


@pytest.mark.training
def test_the_curves_report_goes_to_the_sweeps_output_folder(finetune_sweep):
    folder, sweep, registry_path, _ = finetune_sweep
    chosen = folder / "chosen-output"
    completed = subprocess.run(
        [
            transferlab_executable(),
            "sweep",
            str(sweep),
            "--registry",
            str(registry_path),
            "--output-dir",
            str(chosen),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TRANSFERLAB_OUTPUTS": str(folder / "outputs")},
    )
    summary = json.loads(completed.stdout)
    assert summary["report"], completed.stderr
    report = Path(summary["report"])
    assert report.is_file() and report.parent == chosen
    assert not (folder / "outputs" / "runs").exists()


def _wait_for(predicate, timeout_s: float = 90.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("timed out waiting")


def _running(registry_path: Path) -> list[dict]:
    if not registry_path.exists():
        return []
    try:
        return Registry(registry_path, lock_timeout_s=5).runs(status="running")
    except Exception:
        return []


@contextlib.contextmanager
def _started(sweep: Path, registry: Path, folder: Path):
    """A sweep running in the background; stopped (SIGTERM) if the test fails midway."""
    process = subprocess.Popen(
        [
            transferlab_executable(),
            "sweep",
            str(sweep),
            "--registry",
            str(registry),
            "--output-dir",
            str(folder / "notebooks"),
            "--workers",
            "2",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.communicate(timeout=60)


@pytest.mark.training
def test_ctrl_c_marks_started_runs_interrupted_and_the_next_invocation_resumes(tmp_path):
    template = _gate_template(tmp_path / "gate.ipynb")
    gate = tmp_path / "open"
    sweep = _write_yaml(
        tmp_path / "gated.yaml",
        f"template: {template}\nfixed: {{gate: {gate}}}\ngrid: {{seeds: [0, 1, 2]}}\n",
    )
    registry = tmp_path / "registry.duckdb"
    with _started(sweep, registry, tmp_path) as process:
        _wait_for(lambda: len(_running(registry)) == 2)  # two workers busy, one run queued
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    summary = json.loads(out)
    assert summary["status"] == "interrupted"
    assert sorted(r["status"] for r in summary["runs"]) == ["interrupted", "interrupted", "pending"]
    assert "resume" in err
    reg = Registry(registry)
    assert reg.runs(status="running") == []
    assert sorted(r["status"] for r in reg.runs()) == ["interrupted", "interrupted"]
    assert reg.get_sweep("gated")["status"] == "interrupted"

    gate.touch()
    completed = _sweep_cli(sweep, registry, tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["counts"] == {"succeeded": 3}
    assert {r["status"] for r in reg.sweep_runs("gated")} == {"succeeded"}


@pytest.mark.training
def test_a_killed_sweep_leaves_no_run_running_and_no_version_and_resumes(tmp_path, tiny_bert_dir):
    _write_data(tmp_path / "good.csv")
    sweep = _write_yaml(
        tmp_path / "killed.yaml",
        f"fixed: {{base: {tiny_bert_dir}, data: good.csv, max_steps: 2, batch_size: 8, "
        "max_length: 32}\ngrid: {seeds: [0, 1]}\n",
    )
    registry = tmp_path / "registry.duckdb"
    with _started(sweep, registry, tmp_path) as process:
        _wait_for(lambda: len(_running(registry)) == 2, timeout_s=120)
        process.kill()  # SIGKILL: no clean-up in the sweep process itself
        process.communicate(timeout=30)
    # The workers die with their parent and record their runs as interrupted; whatever they
    # could not record, the next invocation marks (its process is gone).
    completed = _sweep_cli(sweep, registry, tmp_path, "--workers", "2")
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["counts"] == {"succeeded": 2}
    reg = Registry(registry)
    _wait_for(lambda: reg.runs(status="running") == [], timeout_s=30)
    runs = reg.runs(kind="finetune")
    statuses = sorted(r["status"] for r in runs)
    errors = [r.get("error") for r in runs]
    assert statuses == ["interrupted", "interrupted", "succeeded", "succeeded"], errors
    orphans = reg.query(
        "SELECT v.version_id FROM model_versions v JOIN runs r USING (run_id) "
        "WHERE r.status != 'succeeded'"
    )
    assert orphans == []
    assert [s["status"] for s in reg.sweeps("killed")] == ["succeeded", "interrupted"]


def test_a_schema_1_registry_upgrades_to_sweeps_and_keeps_its_runs(tmp_path):
    import duckdb

    from transferlab.registry.migrate import available_migrations

    path = tmp_path / "old.duckdb"
    number, name, sql = available_migrations()[0]
    con = duckdb.connect(str(path))
    con.execute(sql)
    con.execute(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
        "applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    )
    con.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)", [number, name])
    con.execute(
        "INSERT INTO runs (run_id, kind, status, requested) VALUES ('old-run', 'finetune', "
        "'succeeded', '{}')"
    )
    con.close()
    registry = Registry(path)
    assert registry.schema_version() >= 2
    assert registry.get_run("old-run")["status"] == "succeeded"
    sweep_id = registry.start_sweep("upgraded", spec={"grid": {"seed": [0]}}, workers=1)
    registry.add_sweep_run(sweep_id, "k1", "old-run", reused=True)
    registry.finish_sweep(sweep_id, "succeeded", summary={"counts": {"reused": 1}})
    assert registry.latest_sweep("upgraded")["summary"] == {"counts": {"reused": 1}}
    assert [r["run_id"] for r in registry.sweep_runs("upgraded")] == ["old-run"]
    assert registry.sweep_runs(sweep_id)[0]["reused"] is True
    with pytest.raises(Exception, match="No sweep with id or name 'nope'"):
        registry.sweep_runs("nope")
