"""Sweep executors as plug-ins: the built-in `process`, refusals before anything is written,
an executor from another package (entry point group `transferlab.executors`) running a real
sweep, and a sweep's plan and template signature computed once."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import install_plugin_package, run_transferlab_with, write_template
from transferlab import Registry
from transferlab.registry.api import new_run_id
from transferlab.sweeps import load_sweep, run_sweep
from transferlab.sweeps.executors import RunJob, executor_names, get_executor
from transferlab.sweeps.executors.process import ProcessExecutor

# An installed package declaring two executors: one that runs each job in the sweep's own
# process (and logs which jobs it ran, and where), and one that cannot be loaded.
PLUGIN_SOURCE = """
    import json
    import os

    from transferlab.sweeps.executors import SweepExecutor, execute_run


    class InlineExecutor(SweepExecutor):
        name = "inline"
        description = "one run at a time in the sweep's own process"

        def __init__(self, settings):
            super().__init__(settings)
            self.queue = []

        def submit(self, job):
            self.queue.append(job)

        def wait(self, timeout):
            if not self.queue:
                return []
            job = self.queue.pop(0)
            with open(os.environ["TL_INLINE_LOG"], "a") as log:
                log.write(json.dumps({"run_id": job.run_id, "pid": os.getpid()}) + "\\n")
            return [execute_run(job)]

        def stop(self):
            self.queue.clear()
            return []


    class HalfDone(SweepExecutor):
        name = "half"
        description = "submits, never says when a run finished"

        def submit(self, job):
            pass
"""
ENTRY_POINTS = """
[transferlab.executors]
inline = tl_extra_executor:InlineExecutor
half = tl_extra_executor:HalfDone
"""


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    return install_plugin_package(folder, "tl_extra_executor", PLUGIN_SOURCE, ENTRY_POINTS)


def _light_template(path: Path) -> Path:
    """A template that only prints its seed."""
    return write_template(
        path, "run_id = None\nregistry_path = None\nseed = 0", "print('seed', seed, 'done')"
    )


# -- the table ----------------------------------------------------------------------------------


def test_the_built_in_process_executor_is_listed_and_the_default(run_cli, tmp_path):
    code, out, _ = run_cli("executors", "--json")
    rows = json.loads(out)
    assert code == 0 and rows[0]["name"] == "process"
    assert rows[0]["default"] is True and rows[0]["origin"] == "built-in"
    assert rows[0]["description"]
    assert get_executor("process") is ProcessExecutor and "process" in executor_names()
    code, out, _ = run_cli("executors")
    assert code == 0 and "process" in out and "built-in" in out

    (tmp_path / "s.yaml").write_text("grid: {seeds: [0, 1]}\n")
    for extra in ([], ["--executor", "process"]):
        code, out, err = run_cli("sweep", tmp_path / "s.yaml", "--dry-run", "--json", *extra)
        assert code == 0, err
        assert json.loads(out)["executor"] == "process"


def test_an_unknown_executor_is_refused_before_anything_is_written(tmp_path, run_cli):
    sweep = tmp_path / "ok.yaml"
    sweep.write_text("grid: {seeds: [0, 1]}\n")
    registry = tmp_path / "registry.duckdb"
    for extra in (["--dry-run"], []):
        code, out, err = run_cli(
            "sweep", sweep, "--executor", "slurm", "--registry", registry, *extra
        )
        assert code == 2, out + err
        assert "error: Unknown sweep executor 'slurm'" in err
        assert "Use one of: process" in err and "transferlab.executors" in err
    assert not registry.exists()

    # The same name in the sweep file: refused with the file, line and key.
    named = tmp_path / "named.yaml"
    named.write_text("grid: {seeds: [0, 1]}\nexecutor: slurm\n")
    for extra in (["--dry-run"], []):
        code, out, err = run_cli("sweep", named, "--registry", registry, *extra)
        assert code == 2, out + err
        assert f"Sweep file {named}, line 2, key executor" in err
        assert "Unknown sweep executor 'slurm'" in err and "process" in err
    assert not registry.exists()


# -- an executor from another package -----------------------------------------------------------


def test_a_plugin_executor_is_listed_and_a_broken_one_is_named(plugin_path, tmp_path):
    listed = run_transferlab_with(["executors", "--json"], plugin_path)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert list(rows) == ["process", "ray", "inline"]  # the built-ins first
    assert rows["inline"]["origin"] == (
        "entry point 'inline = tl_extra_executor:InlineExecutor' of tl-extra-executor"
    )
    assert rows["inline"]["default"] is False
    assert "warning: not loaded: entry point 'half = tl_extra_executor:HalfDone'" in listed.stderr
    assert "stop, wait not implemented" in listed.stderr

    sweep = tmp_path / "s.yaml"
    sweep.write_text("grid: {seeds: [0, 1]}\n")
    registry = tmp_path / "registry.duckdb"
    refused = run_transferlab_with(
        ["sweep", sweep, "--executor", "half", "--registry", registry], plugin_path
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "Sweep executor 'half' could not be loaded" in refused.stderr
    assert "not implemented" in refused.stderr and "process, ray, inline" in refused.stderr
    assert not registry.exists()


@pytest.mark.training
def test_a_plugin_executor_runs_a_real_sweep_end_to_end(plugin_path, tmp_path, tiny_bert_dir):
    lines = ["text,label"]
    for label in ("billing", "delivery", "refund"):
        lines += [f"my {label} question number {i} about order {i * 7},{label}" for i in range(16)]
    (tmp_path / "good.csv").write_text("\n".join(lines) + "\n")
    sweep = tmp_path / "plugged.yaml"
    sweep.write_text(
        f"fixed: {{base: {tiny_bert_dir}, data: good.csv, max_steps: 2, batch_size: 8, "
        "max_length: 32, early_stopping_patience: null}\n"
        "grid: {n_per_class: [4, 8]}\n"
    )
    registry_path = tmp_path / "registry.duckdb"
    log = tmp_path / "inline.log"
    completed = run_transferlab_with(
        [
            "sweep",
            sweep,
            "--executor",
            "inline",
            "--registry",
            registry_path,
            "--output-dir",
            tmp_path / "notebooks",
            "--no-report",
            "--json",
        ],
        plugin_path,
        TL_INLINE_LOG=str(log),
        TRANSFERLAB_OUTPUTS=str(tmp_path / "outputs"),
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    summary = json.loads(completed.stdout)
    assert summary["counts"] == {"succeeded": 2}

    registry = Registry(registry_path)
    recorded = registry.get_sweep("plugged")
    assert recorded["status"] == "succeeded" and recorded["summary"]["executor"] == "inline"
    runs = registry.sweep_runs("plugged")
    assert sorted(r["status"] for r in runs) == ["succeeded", "succeeded"]
    assert sorted(r["requested"]["n_per_class"] for r in runs) == [4, 8]
    # The plug-in ran exactly these runs, in the sweep's own process (not in worker processes).
    ran = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(r["run_id"] for r in ran) == sorted(r["run_id"] for r in runs)
    assert {r["pid"] for r in ran} == {recorded["pid"]} == {r["pid"] for r in runs}
    for run in runs:
        assert Path(run["output_notebook"]).parent == tmp_path / "notebooks"
    made = registry.query(
        "SELECT v.version_id FROM model_versions v JOIN runs r USING (run_id) "
        "WHERE r.status = 'succeeded'"
    )
    assert len(made) == 2


# -- a sweep's request is resolved once ---------------------------------------------------------


@pytest.mark.training
def test_a_sweep_expands_its_plan_and_inspects_its_template_once(tmp_path, monkeypatch):
    import papermill

    import transferlab.sweeps.run as sweep_run

    template = _light_template(tmp_path / "light.ipynb")
    sweep = tmp_path / "light.yaml"
    sweep.write_text(f"template: {template}\ngrid: {{seeds: [0, 1]}}\n")
    inspected: list[str] = []
    inspect = papermill.inspect_notebook
    monkeypatch.setattr(
        papermill, "inspect_notebook", lambda path, *a, **k: inspected.append(path) or inspect(path)
    )
    expanded = []
    expand = sweep_run.expand
    monkeypatch.setattr(sweep_run, "expand", lambda spec: expanded.append(spec) or expand(spec))

    spec = load_sweep(sweep)
    registry = Registry(tmp_path / "registry.duckdb")
    result = run_sweep(spec, registry, workers=2, output_dir=tmp_path / "nb", progress=False)
    assert result.status == "succeeded" and result.executor == "process"
    assert [row.status for row in result.rows] == ["succeeded", "succeeded"]
    assert len(expanded) == 1
    assert inspected == [str(template.resolve())]  # reading the spec; the sweep reuses it


@pytest.mark.training
def test_a_worker_runs_a_job_with_the_sweeps_signature_without_inspecting(tmp_path):
    from transferlab.parameters import signature

    template = _light_template(tmp_path / "light.ipynb")
    registry = Registry(tmp_path / "registry.duckdb")
    sweep_id = registry.start_sweep("worker", spec={}, workers=1)
    job = RunJob(
        key="k",
        run_id=new_run_id("light"),
        template=str(template),
        parameters={"seed": 3},
        paths_from=str(tmp_path),
        registry_path=str(registry.path),
        output_dir=str(tmp_path / "nb"),
        sweep_id=sweep_id,
        signature=signature(template),
    )
    # A fresh process, as a worker is: the notebook's inspection would fail there.
    code = textwrap.dedent(
        """
        import pickle, sys
        import papermill
        from transferlab.sweeps.executors import execute_run

        def inspected(*args, **kwargs):
            raise AssertionError("the worker inspected the template again")

        papermill.inspect_notebook = inspected
        result = execute_run(pickle.loads(sys.stdin.buffer.read()))
        print(result.status, result.error)
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        input=pickle.dumps(job),
        capture_output=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    out = completed.stdout.decode()
    assert completed.returncode == 0 and out.startswith("succeeded"), (
        out + completed.stderr.decode()
    )
    assert Registry(registry.path).get_run(job.run_id)["status"] == "succeeded"


@pytest.fixture
def restored_table():
    """Executors registered by a test are gone afterwards."""
    from transferlab.sweeps.executors import registry as table

    saved = table.TABLE.snapshot()  # built-ins and entry points loaded first
    yield
    table.TABLE.restore(saved)


def test_an_executor_that_raises_leaves_the_sweep_recorded_not_running(tmp_path, restored_table):
    from transferlab.sweeps.executors import SweepExecutor, register_executor

    @register_executor
    class Failing(SweepExecutor):
        name = "failing"
        description = "takes the jobs, then breaks"

        def submit(self, job):
            self.submitted = True

        def wait(self, timeout):
            raise RuntimeError("the cluster is gone")

        def stop(self):
            self.stopped = True
            return []

    assert "failing" in executor_names()
    template = _light_template(tmp_path / "light.ipynb")
    sweep = tmp_path / "light.yaml"
    sweep.write_text(f"template: {template}\nexecutor: failing\ngrid: {{seeds: [0, 1]}}\n")
    registry = Registry(tmp_path / "registry.duckdb")
    with pytest.raises(RuntimeError, match="the cluster is gone"):
        run_sweep(load_sweep(sweep), registry, workers=1, progress=False)
    recorded = registry.get_sweep("light")
    assert recorded["status"] == "interrupted"
    assert recorded["summary"]["executor"] == "failing"
    assert recorded["summary"]["counts"] == {"pending": 2}
    assert registry.runs(status="running") == []
