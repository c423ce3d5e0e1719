"""Live progress inside long steps (transferlab.progress): `transferlab run finetune` on a tiny
random model shows the training step and loss as plain timestamped lines, a few seconds apart
and never more than 5 s apart while it trains, in a captured log; on a terminal the progress is
one line rewritten in place (a template that reports a training through the same API); `-q`
silences it; a slow step still gets its line on time; a sweep's display says which runs are
where."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import transferlab_executable, write_template
from transferlab.progress import RunView, channel_path, for_run, phase
from transferlab.progress.channel import STALE_AFTER_S, Tail, close_channel, open_channel
from transferlab.progress.console import PLAIN_EVERY_S, ConsoleProgress
from transferlab.progress.emit import cell_started
from transferlab.registry.api import new_run_id
from transferlab.sweeps.live import SweepProgress
from transferlab.sweeps.run import RunRow

pytestmark = [pytest.mark.training]

STAMPED = re.compile(r"^\[(\d\d:\d\d:\d\d)\] (.*)$")
TRAINING = re.compile(r"\| step (\d+)/(\d+) \(\d+%\), loss \d+\.\d+")


def _environment() -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "COLUMNS": "200",
    }


def _finetune_command(tmp_path: Path, base: Path, steps: int, *extra: str) -> list[str]:
    return [
        transferlab_executable(), "run", "finetune",
        "-p", "base", str(base), "-p", "max_steps", str(steps), "-p", "batch_size", "8",
        "-p", "max_length", "32", "-p", "early_stopping_patience", "null",
        "--registry", str(tmp_path / "registry.duckdb"),
        "--output-dir", str(tmp_path / "runs"), *extra,
    ]  # fmt: skip


def _seconds(stamp: str) -> int:
    moment = datetime.strptime(stamp, "%H:%M:%S")
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def _run_id(output: str) -> str:
    return re.search(r"^run\s+(\S+)", output, re.MULTILINE).group(1)


def _stepping_template(tmp_path: Path) -> Path:
    """A notebook whose one cell reports a 6-step training through the library's progress
    API, a second a step (sleeping: it costs no CPU)."""
    return write_template(
        tmp_path / "stepping.ipynb",
        "registry_path = None\nrun_id = None",
        "import time\n"
        "from transferlab.progress import for_run, phase\n"
        "with for_run(run_id), phase('train', 6) as training:\n"
        "    for step in range(6):\n"
        "        time.sleep(1)\n"
        "        training.update(step + 1, loss=1 / (step + 1))\n",
    )


def _template_command(tmp_path: Path, template: Path, *extra: str) -> list[str]:
    return [
        transferlab_executable(), "run", str(template),
        "--registry", str(tmp_path / "registry.duckdb"), "--output-dir", str(tmp_path / "runs"),
        *extra,
    ]  # fmt: skip


def test_a_captured_log_gets_a_plain_line_with_step_and_loss_every_few_seconds(
    tmp_path, tiny_bert_dir
):
    log = tmp_path / "log.txt"
    with open(log, "w") as stdout:
        completed = subprocess.run(
            _finetune_command(tmp_path, tiny_bert_dir, 400),
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env=_environment(),
            timeout=600,
        )
    output = log.read_text()
    assert completed.returncode == 0, (output, completed.stderr[-3000:])
    assert "\r" not in output and "Executing" not in output  # no bars, not papermill's cells
    stamped = [STAMPED.match(line) for line in output.splitlines() if line.startswith("[")]
    assert all(stamped), output
    times = [_seconds(m.group(1)) for m in stamped]
    texts = [m.group(2) for m in stamped]
    # Not a wall: lines come at most every ~3 s (the last one, the run's end, may come sooner).
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert all(gap >= 2 for gap in gaps[:-1]), output
    # Training: step and loss; from its first line to the first line after it, at most 5 s
    # between lines, however long the training took.
    training = [i for i, text in enumerate(texts) if TRAINING.search(text)]
    assert training, output
    assert training == list(range(training[0], training[-1] + 1)), output  # none between
    during = range(training[0], min(training[-1] + 1, len(times) - 1))
    assert all(times[i + 1] - times[i] <= 5 for i in during), output
    steps = [int(TRAINING.search(texts[i]).group(1)) for i in training]
    assert steps == sorted(steps), output
    assert all(TRAINING.search(texts[i]).group(2) == "400" for i in training), output
    assert re.search(r"elapsed, ~\d+:\d\d left", texts[training[0]]), output
    assert not channel_path(_run_id(output)).exists()  # nothing outlives the run


def _on_a_terminal(command: list[str]) -> tuple[str, list[tuple[float, bytes]]]:
    """Run `command` with a pseudo-terminal as stdout: (what it printed, chunks as they
    came, each with its arrival time)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env=_environment(),
    )
    os.close(follower)
    chunks: list[tuple[float, bytes]] = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # EIO: the process closed the terminal
            break
        if not data:
            break
        chunks.append((time.monotonic(), data))
    os.close(leader)
    assert process.wait(timeout=300) == 0
    return b"".join(data for _, data in chunks).decode(), chunks


def test_a_terminal_gets_one_line_rewritten_in_place(tmp_path):
    output, chunks = _on_a_terminal(_template_command(tmp_path, _stepping_template(tmp_path)))
    live, summary = output.split("run  ", 1)
    assert "status    succeeded" in summary
    assert live.count("\n") == 1, live  # one line, rewritten with \r, ended once
    updates = live.split("\r")
    assert any(TRAINING.search(update) for update in updates), live
    assert any("step 6/6 (100%), loss 0.167, done in" in update for update in updates), live
    # Training updates arrive at least every 5 s (the line is redrawn twice a second).
    arrivals, seen = [], b""
    for moment, data in chunks:
        seen += data
        if TRAINING.search(seen.decode(errors="replace").split("\r")[-1]):
            arrivals.append(moment)
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]
    assert len(arrivals) >= 3 and all(gap <= 5 for gap in gaps), gaps


def test_quiet_shows_no_progress(tmp_path):
    command = _template_command(tmp_path, _stepping_template(tmp_path), "-q")
    output, _ = _on_a_terminal(command)
    live, summary = output.split("run  ", 1)
    assert live == "" and "status    succeeded" in summary, output


def test_a_slow_step_still_gets_a_line_on_time(tmp_path):
    """One training step that takes 7 s writes nothing meanwhile; the log still gets its line
    every PLAIN_EVERY_S, the elapsed time moving."""
    run_id = new_run_id("finetune")
    path = open_channel(run_id)
    stream = io.StringIO()
    try:
        cell_started(path, 6, 16)
        with ConsoleProgress(path, stream), for_run(run_id), phase("train", 10) as training:
            training.update(1, force=True, loss=1.25)
            time.sleep(2 * PLAIN_EVERY_S + 1)
    finally:
        close_channel(run_id)
    lines = stream.getvalue().splitlines()
    slow = [line for line in lines if "step 1/10 (10%), loss 1.250" in line and "elapsed" in line]
    assert len(slow) >= 2, lines
    assert len(lines) <= 5, lines  # not a line per tick
    elapsed = [re.search(r"(\d+:\d\d) elapsed", line).group(1) for line in slow]
    assert elapsed == sorted(elapsed) and len(set(elapsed)) == len(elapsed), lines


def test_a_file_left_by_a_run_killed_long_ago_is_removed_by_the_next_run():
    left, fresh = new_run_id("killed"), new_run_id("running")
    for run_id in (left, fresh):
        open_channel(run_id)
    long_ago = time.time() - STALE_AFTER_S - 60
    os.utime(channel_path(left), (long_ago, long_ago))
    following = new_run_id("next")
    open_channel(following)
    try:
        assert not channel_path(left).exists() and channel_path(fresh).exists()
    finally:
        for run_id in (fresh, following):
            close_channel(run_id)


def test_library_code_writes_nothing_without_the_runner(tmp_path):
    run_id = new_run_id("finetune")
    with for_run(run_id), phase("embed", 4) as embedding:
        embedding.advance(4)
    assert not channel_path(run_id).exists()


def test_the_view_says_cell_step_loss_score_and_time_left():
    view = RunView()
    view.apply([{"t": 100.0, "phase": "cell", "done": 6, "total": 16}])
    assert view.text(now=113.0) == "cell 6/16, 0:13 in this cell"
    view.apply(
        [
            {"t": 110.0, "phase": "train", "done": 40, "total": 120, "started": 100.0,
             "loss": 0.8312, "eval": {"accuracy": 0.71}},
        ]
    )  # fmt: skip
    assert view.in_step
    assert view.text(now=110.0) == (
        "cell 6/16 | step 40/120 (33%), loss 0.831, eval accuracy 0.710, 0:10 elapsed, ~0:20 left"
    )
    view.apply([{"t": 130.0, "phase": "train", "done": 120, "total": 120, "started": 100.0,
                 "loss": 0.4, "end": True}])  # fmt: skip
    assert not view.in_step and view.text(now=500.0).endswith("loss 0.400, done in 0:30")
    view.apply([{"t": 131.0, "phase": "cell", "done": 7, "total": 16}])
    assert view.step is None  # a finished step is shown until the next cell starts


def test_a_sweep_shows_which_runs_are_where(tmp_path):
    from tqdm import tqdm

    ids = [new_run_id("finetune") for _ in range(3)]
    rows = {
        f"k{i}": RunRow(f"k{i}", f"run {i}", {}, {}, run_id=run_id) for i, run_id in enumerate(ids)
    }
    rows["k2"].status = "succeeded"  # finished: not shown
    for run_id in ids:
        open_channel(run_id)
    try:
        cell_started(channel_path(ids[0]), 6, 16)
        with for_run(ids[0]), phase("train", 120) as training:
            training.update(40, force=True, loss=0.83)
            cell_started(channel_path(ids[1]), 4, 16)
            stream = io.StringIO()
            bar = tqdm(total=3, file=io.StringIO())
            SweepProgress(rows, 3, bar, stream).show()
            lines = stream.getvalue().splitlines()
            assert [line.split("] ", 1)[1].split(" | ")[0] for line in lines] == [
                f"run 1/3 {ids[0]} cell 6/16",
                f"run 2/3 {ids[1]} cell 4/16, 0:00 in this cell",
            ]
            assert "step 40/120 (33%), loss 0.830" in lines[0]
            # On a terminal the sweep's bar carries them.
            leader, follower = pty.openpty()
            with os.fdopen(follower, "w") as terminal:
                SweepProgress(rows, 3, bar, terminal).show()
            os.close(leader)
            assert bar.postfix == "run 1 step 40/120 loss 0.830 | run 2 cell 4/16"
    finally:
        for run_id in ids:
            close_channel(run_id)


def test_the_tail_reads_complete_lines_only(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"phase": "cell", "done": 1, "total": 2}\n{"phase": "ce')
    tail = Tail(path)
    assert [r["done"] for r in tail.read()] == [1]
    with open(path, "a") as handle:
        handle.write('ll", "done": 2, "total": 2}\n')
    assert [r["done"] for r in tail.read()] == [2]
    path.unlink()
    assert tail.read() == []


def test_the_progress_files_stay_out_of_the_way_of_threads():
    """A write from another thread lands whole (one write per line, O_APPEND)."""
    run_id = new_run_id("t")
    path = open_channel(run_id)
    try:
        writers = [
            threading.Thread(target=lambda: [cell_started(path, i, 100) for i in range(100)])
            for _ in range(4)
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        assert len(Tail(path).read()) == 400
    finally:
        close_channel(run_id)
