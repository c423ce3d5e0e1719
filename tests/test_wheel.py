"""A wheel carries the templates: `pip install .` (not editable) gives a working `transferlab`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from transferlab import Registry

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "src", "templates", "sweeps")


def _run(*command: str | Path, **kwargs) -> subprocess.CompletedProcess:
    completed = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=300, **kwargs
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed


@pytest.mark.training
@pytest.mark.slow
def test_a_wheel_installed_elsewhere_runs_the_finetune_template(tmp_path, tiny_bert_dir):
    # Build from a copy, so the build leaves nothing in the checkout; no network: the build
    # uses this environment's setuptools.
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCE:
        if not (ROOT / name).exists():
            continue
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".ipynb_checkpoints")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    _run(
        sys.executable,
        *("-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"),
        *("-w", tmp_path / "dist", source),
    )
    (wheel,) = (tmp_path / "dist").glob("transferlab-*.whl")

    # A fresh environment whose dependencies are this one's packages (a .pth file), without
    # this checkout's editable transferlab; the wheel installed into it by its own python.
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    site_packages = Path(purelib.stdout.strip())
    (site_packages / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", wheel)

    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TRANSFERLAB_TEMPLATES")}
    completed = _run(
        venv / "bin" / "transferlab",
        *("run", "finetune", "-p", "base", tiny_bert_dir, "-p", "max_steps", "2"),
        *("-p", "batch_size", "8", "-p", "max_length", "32"),
        *("--registry", empty / "registry.duckdb", "-q", "--json"),
        cwd=empty,
        env=env,
    )
    result = json.loads(completed.stdout)
    assert result["status"] == "succeeded", result["error"]
    assert Path(result["output_notebook"]).is_relative_to(empty)
    run = Registry(empty / "registry.duckdb").get_run(result["run_id"])
    packaged = site_packages / "transferlab" / "templates" / "finetune.ipynb"
    assert Path(run["template"]) == packaged  # the wheel's template, not this checkout's
    assert (site_packages / "transferlab" / "sweeps" / "sample_curve.yaml").is_file()
