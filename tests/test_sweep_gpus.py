"""GPUs per run (`resources: {gpus: N}`): the process executor gives each worker its own share
of the machine's GPUs (CUDA_VISIBLE_DEVICES, inherited by the run's kernel), refuses shares it
cannot give before anything is written, and a run given several GPUs trains on all of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import write_template
from transferlab import Registry


def _gpu_template(path: Path) -> Path:
    """Records the GPUs its kernel was given (a file per seed), after a pause so the runs
    overlap."""
    body = (
        "import os, pathlib, time\n"
        "time.sleep(1.0)\n"
        "pathlib.Path(out, f'{seed}.txt').write_text(os.environ.get('CUDA_VISIBLE_DEVICES', '-'))"
    )
    return write_template(path, "run_id = None\nregistry_path = None\nseed = 0\nout = ''", body)


@pytest.mark.training
def test_each_worker_gets_its_own_gpus(tmp_path, run_cli, monkeypatch):
    # Named as CUDA_VISIBLE_DEVICES names GPUs: the split is the executor's, whatever they are.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-a,GPU-b,GPU-c,GPU-d,GPU-e")
    seen = tmp_path / "seen"
    seen.mkdir()
    template = _gpu_template(tmp_path / "gpus.ipynb")
    sweep = tmp_path / "gpus.yaml"
    sweep.write_text(
        f"template: {template}\nfixed: {{out: '{seen}'}}\ngrid: {{seeds: [0, 1, 2, 3]}}\n"
        "resources: {gpus: 2}\n"
    )
    registry = tmp_path / "registry.duckdb"
    code, out, err = run_cli(
        "sweep", sweep, "--registry", registry, "--workers", "4", "--json",
        "--output-dir", tmp_path / "notebooks",
    )  # fmt: skip
    assert code == 0, out + err
    assert json.loads(out)["counts"] == {"succeeded": 4}
    shares = {path.read_text() for path in seen.glob("*.txt")}
    # Five GPUs hold two whole shares of two: two workers (not the four asked), never sharing.
    assert shares <= {"GPU-a,GPU-b", "GPU-c,GPU-d"} and len(shares) >= 1
    assert all(len(share.split(",")) == 2 for share in shares)


@pytest.mark.parametrize(
    ("visible", "resources", "expected"),
    [
        ("0", "{gpus: 2}", "each run asks for 2 GPU(s) and this machine shows 1"),
        ("", "{gpus: 1}", "this machine shows 0"),
        ("0,1", "{gpus: 0.5}", "gives each run whole GPUs"),
    ],
)
def test_gpus_this_machine_cannot_give_are_refused_before_anything_is_written(
    tmp_path, run_cli, monkeypatch, visible, resources, expected
):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    sweep = tmp_path / "greedy.yaml"
    sweep.write_text(f"grid: {{seeds: [0, 1]}}\nresources: {resources}\n")
    registry = tmp_path / "registry.duckdb"
    code, out, err = run_cli("sweep", sweep, "--registry", registry)
    assert code == 2, out + err
    assert expected in err and "resources.gpus" in err
    assert not registry.exists()


@pytest.mark.gpu
@pytest.mark.training
def test_a_run_given_several_gpus_trains_on_all_of_them(tmp_path, tiny_bert_dir):
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        pytest.skip("needs two or more CUDA GPUs")
    from transferlab.finetune import FinetuneConfig, finetune

    lines = ["text,label"]
    for label in ("billing", "delivery"):
        lines += [f"my {label} question {i}" for i in range(16)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    result = finetune(
        FinetuneConfig(
            base=str(tiny_bert_dir), data=str(tmp_path / "d.csv"), method="lora",
            max_steps=2, batch_size=8, output_dir=str(tmp_path / "out"),
            registry=str(tmp_path / "r.duckdb"),
        )
    )  # fmt: skip
    assert result.resources["device"] == "cuda"
    assert result.resources["gpus"] == torch.cuda.device_count()
    assert Registry(tmp_path / "r.duckdb").get_run(result.run_id)["status"] == "succeeded"
