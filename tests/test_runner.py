"""Template runs through papermill: recorded from start to finish, failures kept."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from tests.conftest import write_template
from transferlab import Registry


def _template(path, body: str):
    return write_template(path, "run_id = None\nregistry_path = None\nanswer = 1", body)


@pytest.mark.training
def test_a_successful_run_is_recorded_with_its_parameters(tmp_path, run_cli):
    template = _template(tmp_path / "ok.ipynb", "print('answer is', answer * 2)")
    registry = tmp_path / "reg.duckdb"
    code, out, _ = run_cli(
        "run",
        template,
        "-p",
        "answer",
        "21",
        "--registry",
        registry,
        "--output-dir",
        tmp_path / "out",
        "--json",
    )
    result = json.loads(out)
    assert code == 0 and result["status"] == "succeeded"
    run = Registry(registry).get_run(result["run_id"])
    assert run["status"] == "succeeded" and run["parameters"] == {"answer": 21}
    assert run["finished_at"] >= run["started_at"]
    executed = nbformat.read(result["output_notebook"], as_version=4)
    assert "answer is 42" in executed.cells[-1].outputs[0]["text"]


@pytest.mark.training
def test_a_failing_run_is_recorded_as_failed_with_its_notebook_kept(tmp_path, run_cli):
    template = _template(tmp_path / "bad.ipynb", "raise ValueError(f'answer {answer} is wrong')")
    registry = tmp_path / "reg.duckdb"
    code, out, _ = run_cli(
        "run",
        template,
        "-p",
        "answer",
        "7",
        "--registry",
        registry,
        "--output-dir",
        tmp_path / "out",
        "--json",
    )
    result = json.loads(out)
    assert code == 1 and result["status"] == "failed"
    assert result["error"] == "ValueError: answer 7 is wrong"
    run = Registry(registry).get_run(result["run_id"])
    assert (run["status"], run["error"]) == ("failed", "ValueError: answer 7 is wrong")
    executed = nbformat.read(run["output_notebook"], as_version=4)
    assert executed.cells[-1].outputs[0]["ename"] == "ValueError"


def test_unknown_parameters_are_refused_before_any_run(tmp_path, run_cli):
    template = _template(tmp_path / "ok.ipynb", "pass")
    registry = tmp_path / "reg.duckdb"
    code, _, err = run_cli("run", template, "-p", "anwser", "1", "--registry", registry)
    assert code == 2 and "Unknown parameter(s) anwser" in err and "answer" in err
    assert Registry(registry).runs() == []


def test_unknown_template_lists_the_known_ones(tmp_path, run_cli):
    code, _, err = run_cli("run", "finetuen", "--registry", tmp_path / "reg.duckdb")
    assert code == 2 and "No template 'finetuen'" in err


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("2e-3", 2e-3),
        ("true", True),
        ("[query, value]", ["query", "value"]),
        ("lora", "lora"),
        ("a: b", "a: b"),
    ],
)
def test_cli_values_are_read_as_yaml_scalars_and_lists(text, value):
    from transferlab.runner import parse_cli_value

    assert parse_cli_value(text) == value


@pytest.mark.training
def test_a_parameter_file_is_read_and_cli_values_win(tmp_path, run_cli):
    template = _template(tmp_path / "ok.ipynb", "print('answer is', answer)")
    params = tmp_path / "params.yaml"
    params.write_text("answer: 5\n")
    registry = tmp_path / "reg.duckdb"
    code, out, _ = run_cli(
        "run",
        template,
        "-f",
        params,
        "--registry",
        registry,
        "--output-dir",
        tmp_path / "out",
        "--json",
    )
    assert code == 0
    assert Registry(registry).get_run(json.loads(out)["run_id"])["requested"] == {"answer": 5}
    code, out, _ = run_cli(
        "run",
        template,
        "-f",
        params,
        "-p",
        "answer",
        "6",
        "--registry",
        registry,
        "--output-dir",
        tmp_path / "out",
        "--json",
    )
    assert Registry(registry).get_run(json.loads(out)["run_id"])["requested"] == {"answer": 6}
    params.write_text("- not a mapping\n")
    code, _, err = run_cli("run", template, "-f", params, "--registry", registry)
    assert code == 2 and "must be a mapping" in err


@pytest.mark.training
def test_kernels_run_on_local_sockets_without_the_tcp_warning(tmp_path, capfd):
    """The kernel's own stderr goes to ours: a TCP kernel would warn there on every run."""
    import tempfile

    from transferlab.kernels import ipc_possible
    from transferlab.runner import run_template

    if not ipc_possible():
        pytest.skip(f"The temp folder {tempfile.gettempdir()} is too deep for socket paths")
    template = _template(
        tmp_path / "ipc.ipynb",
        "import json, ipykernel.connect\n"
        "print(json.loads(ipykernel.connect.get_connection_info())['transport'])",
    )

    def socket_folders() -> set[Path]:
        return set(Path(tempfile.gettempdir()).glob("transferlab-kernel-*"))

    before = socket_folders()
    outcome = run_template(
        str(template), {}, registry=Registry(tmp_path / "reg.duckdb"), output_dir=tmp_path / "out"
    )
    assert outcome.succeeded
    executed = nbformat.read(outcome.output_notebook, as_version=4)
    assert executed.cells[-1].outputs[0]["text"].strip() == "ipc"
    assert "without encryption" not in capfd.readouterr().err
    assert socket_folders() <= before  # the kernel's socket folder is removed with it


def _sleeping_template(path: Path) -> Path:
    """Touches `started` once its cell runs, then sleeps (longer than any test waits)."""
    body = "import pathlib, time\npathlib.Path(started).touch()\ntime.sleep(300)"
    return write_template(path, "run_id = None\nregistry_path = None\nstarted = None", body)


@pytest.mark.training
@pytest.mark.parametrize("whole_group", [True, False], ids=["ctrl-c", "sigint-to-cli"])
def test_ctrl_c_prints_one_line_and_records_the_run_as_interrupted(tmp_path, whole_group):
    """Ctrl-C reaches the terminal's whole process group (the CLI and its kernel)."""
    import os
    import signal
    import subprocess
    import time

    from tests.conftest import transferlab_executable

    template = _sleeping_template(tmp_path / "sleep.ipynb")
    started, registry = tmp_path / "started", tmp_path / "registry.duckdb"
    process = subprocess.Popen(
        [transferlab_executable(), "run", str(template), "-p", "started", str(started)]
        + ["--registry", str(registry), "--output-dir", str(tmp_path / "out"), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives it
        # Ctrl-C's default action, as a terminal gives it: a shell's background job (`.ci/run &`,
        # nohup) ignores SIGINT, the CLI inherits that and rightly keeps ignoring it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert started.exists(), "the template's cell never ran"
        time.sleep(0.5)
        if whole_group:
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGUSR1)  # the CLI prints every thread's stack
            time.sleep(3)
            process.kill()
            out, err = process.communicate()
            pytest.fail(f"transferlab did not stop within 60 s of SIGINT; its stacks:\n{err}")
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, out + err
    assert err == "interrupted\n"
    (run,) = Registry(registry).runs()
    assert run["status"] == "interrupted"
