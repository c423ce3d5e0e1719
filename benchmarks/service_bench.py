"""Registry benchmark through the REST service, side by side with the registry opened directly.

    PYTHONPATH=src .venv/bin/python benchmarks/service_bench.py [--models 100000]
        [--results 1000000] [--repeats 30] [--writers 8] [--runs 50]
        [--registry-location postgresql://USER@HOST:PORT/EMPTY_DB] [--out FILE.json]

Fills a registry as registry_bench.py does (same data, same seed: a DuckDB file in a temporary
folder, or the empty PostgreSQL database given), starts `transferlab serve --allow-anonymous`
on it as a real subprocess (uvicorn, one worker), waits for /readyz, and times the same public
calls on `Registry(location)` (direct) and on `Registry("http://127.0.0.1:PORT")` (a
RemoteRegistry: every method one `POST /v1/registry/<method>`):

- filtered search: `search_models(registry, SearchFilters(...))`, registry_bench's 6 cases;
- semantic top-10: `search_models` with a query; the query is embedded on the client both
  ways (MiniLM), only the vector travels;
- leaderboard: `registry.leaderboard(suite, metric)` over the results;
- a round trip: `registry.schema_version()` (the smallest read; what a call costs at least);
- one run recorded (`start_run` + `finish_run`) by one client alone: a write's own cost;
- record-run throughput: `--writers` processes, each recording `--runs` runs
  (`start_run` + `finish_run`) as fast as it can, all released at once; runs/s over the span
  from the first call to the last, and a count of the runs that landed.

Each read case is called directly, then through the service, right after each other (paired in
time, so a busy machine skews both alike); the first rows of both are compared. The service
stops with SIGTERM at the end. Targets: filtered p50 <= 20 ms direct and <= 30 ms through the
service, semantic top-10 p50 <= 200 ms both ways (the worst case of each group counts).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import registry_bench as rb

from transferlab.embeddings import embed_texts
from transferlab.registry import Registry
from transferlab.search import search_models

TARGETS_MS = {  # group -> (direct, service): the worst case's p50 must stay under
    "filtered": (20.0, 30.0),
    "semantic": (200.0, 200.0),
}
LEADERBOARDS = (("glue-lite", "accuracy"), ("retrieval-mini", "f1_macro"))
READY_TIMEOUT_S = 180.0
CLI = "import sys; from transferlab.cli import main; sys.exit(main())"  # `transferlab ...`


# -- the service -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served(location: str, folder: Path) -> Iterator[dict[str, Any]]:
    """`transferlab serve` on `location` in a subprocess until the block ends (then SIGTERM)."""
    port = free_port()
    command = [
        sys.executable, "-c", CLI, "serve", "--registry", location,
        "--artefacts", str(folder / "artefacts"), "--allow-anonymous",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    log_path = folder / "service.log"
    started = time.perf_counter()
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    info: dict[str, Any] = {"url": f"http://127.0.0.1:{port}", "pid": process.pid}
    try:
        info["ready_s"] = round(wait_ready(info["url"], process, log_path) - started, 2)
        yield info
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            info["exit_code"] = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            info["exit_code"] = process.wait()
        lines = log_path.read_text(errors="replace").splitlines()
        info.update(access_log_summary(lines))
        info["log_tail"] = lines[-5:]


def access_log_summary(lines: list[str]) -> dict[str, Any]:
    """Requests per HTTP status, and per path the service's own time (its JSON access log):
    what a call costs inside the service, without the HTTP client and the network."""
    statuses: dict[str, int] = {}
    durations: dict[str, list[float]] = {}
    for line in lines:
        if line.startswith("{"):
            entry = json.loads(line)
            statuses[str(entry["status"])] = statuses.get(str(entry["status"]), 0) + 1
            durations.setdefault(entry["path"], []).append(entry["duration_ms"])
    per_path = {
        path: {"n": len(values), "p50_ms": round(float(np.median(values)), 2)}
        for path, values in sorted(durations.items())
    }
    return {"statuses": statuses, "service_ms_by_path": per_path}


def process_cpu_s(pid: int) -> float:
    """CPU seconds a running process has used (/proc/PID/stat: utime + stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_ready(url: str, process: subprocess.Popen, log_path: Path) -> float:
    """Poll /readyz until it answers 200; the perf_counter time it did."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the service exited ({process.returncode}):\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return time.perf_counter()
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the service was not ready within {READY_TIMEOUT_S:.0f} s")


# -- read cases ------------------------------------------------------------------------------

Call = Callable[[Any], Callable[[], list]]  # registry -> the call to time on it


def read_cases() -> list[tuple[str, str, Call]]:
    """(name, group, call factory): the same public calls for either registry."""
    cases: list[tuple[str, str, Call]] = [
        ("round trip: schema_version()", "overhead", lambda reg: lambda: [reg.schema_version()])
    ]
    for label, filters in rb.FILTERED:
        cases.append(
            (f"filtered: {label}", "filtered", lambda reg, f=filters: lambda: search_models(reg, f))
        )
    for label, filters in rb.SEMANTIC:
        queries = [rb.with_query(filters, q) for q in rb.SEMANTIC_QUERIES]
        cases.append(
            (
                f"semantic top-10: {label}",
                "semantic",
                lambda reg, qs=queries: rb.each_call(lambda f: search_models(reg, f), qs),
            )
        )
    for suite, metric in LEADERBOARDS:
        cases.append(
            (
                f"leaderboard: {suite} / {metric}",
                "leaderboard",
                lambda reg, s=suite, m=metric: lambda: reg.leaderboard(s, m),
            )
        )
    cases.append(("record run: one client, serial", "write", lambda reg: lambda: record(reg)))
    return cases


def record(registry: Any) -> list:
    """One run recorded: start_run + finish_run (two calls)."""
    run_id = registry.start_run("benchmark", template="service-bench-serial.ipynb")
    registry.finish_run(run_id, "succeeded", metrics={"ok": 1})
    return []


def measure_reads(direct: Registry, remote: Any, repeats: int) -> list[dict[str, Any]]:
    """Every case on the direct registry, then through the service, paired in time."""
    rows = []
    for name, group, make in read_cases():
        entry: dict[str, Any] = {"operation": name, "group": group}
        names = {}
        for side, registry in (("direct", direct), ("service", remote)):
            call = make(registry)
            first = call()
            names[side] = rb.first_names(first) if group not in ("overhead", "write") else first
            entry[side] = vars(rb.time_calls(call, repeats))
            entry[f"{side}_rows"] = len(first)
        entry["same_rows"] = names["direct"] == names["service"]
        rows.append(entry)
        print(
            f"  {name:<45} direct {entry['direct']['p50_ms']:7.1f} ms  "
            f"service {entry['service']['p50_ms']:7.1f} ms",
            flush=True,
        )
    return rows


# -- record-run throughput -------------------------------------------------------------------


def writer(location: str, template: str, tag: str, runs: int, go_file: str) -> None:
    """One writer process: `runs` x (start_run + finish_run) once `go_file` exists."""
    registry = Registry(location, lock_timeout_s=600)
    print("ready", flush=True)
    while not os.path.exists(go_file):
        time.sleep(0.005)
    calls, failures, errors = [], 0, []
    first = time.time()
    for i in range(runs):
        try:
            t0 = time.perf_counter()
            run_id = registry.start_run(
                "benchmark", template=template, parameters={"w": tag, "i": i}
            )
            t1 = time.perf_counter()
            registry.finish_run(run_id, "succeeded", metrics={"i": i})
            calls += [t1 - t0, time.perf_counter() - t1]
        except Exception as error:  # counted: a run that did not land
            failures += 1
            errors.append(f"{type(error).__name__}: {error}"[:300])
    out = {"first": first, "last": time.time(), "calls_s": calls, "failures": failures}
    print(json.dumps(out | {"errors": errors[:3]}), flush=True)


def record_runs(
    location: str, direct: Registry, side: str, writers: int, runs: int, folder: Path
) -> dict[str, Any]:
    """`writers` processes recording `runs` runs each on `location`, released together."""
    template = f"service-bench-{side}.ipynb"
    go_file = folder / f"go-{side}"
    script = str(Path(__file__).resolve())
    worker = [sys.executable, script, "--worker", location, template]
    procs = [
        subprocess.Popen(
            [*worker, str(w), str(runs), str(go_file)], stdout=subprocess.PIPE, text=True
        )
        for w in range(writers)
    ]
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"a {side} writer did not start (exit {proc.wait()})")
    go_file.touch()
    outputs = [json.loads(proc.communicate()[0].splitlines()[-1]) for proc in procs]
    span = max(out["last"] for out in outputs) - min(out["first"] for out in outputs)
    landed = direct.query(
        "SELECT count(*) AS n FROM runs WHERE template = ? AND status = 'succeeded'", [template]
    )[0]["n"]
    calls_ms = [c * 1000 for out in outputs for c in out["calls_s"]]
    return {
        "writers": writers,
        "runs_per_writer": runs,
        "runs_expected": writers * runs,
        "runs_landed": landed,
        "failures": sum(out["failures"] for out in outputs),
        "errors": [e for out in outputs for e in out["errors"]][:5],
        "span_s": round(span, 2),
        "runs_per_s": round(writers * runs / span, 1),
        "call_ms": vars(rb.Timing.of(calls_ms)) if calls_ms else None,
    }


# -- report ----------------------------------------------------------------------------------


def verdicts(reads: list[dict[str, Any]]) -> dict[str, Any]:
    """The worst p50 of each group, each side, against its target."""
    out: dict[str, Any] = {}
    for group in ("filtered", "semantic", "leaderboard"):
        for index, side in enumerate(("direct", "service")):
            worst = max(r[side]["p50_ms"] for r in reads if r["group"] == group)
            target = TARGETS_MS[group][index] if group in TARGETS_MS else None
            out[f"{group}_{side}"] = {
                "worst_p50_ms": round(worst, 1),
                "target_ms": target,
                "met": None if target is None else worst <= target,
            }
    return out


def target_text(verdict: dict[str, Any]) -> str:
    if verdict["target_ms"] is None:
        return ""
    return f"<={verdict['target_ms']:.0f} {'ok' if verdict['met'] else 'MISS'}"


def print_table(report: dict[str, Any]) -> None:
    reads, writes, judged = report["reads"], report["record_runs"], report["targets"]
    header = (
        f"{'operation':<45} {'direct p50':>10} {'p95':>10} {'service p50':>11} {'p95':>10} "
        f"{'svc/dir':>7}  same rows"
    )
    print(f"\n{report['backend']}, {report['models']:,} models, {report['results']:,} results "
          f"(ms; service = {report['service']['url']})")  # fmt: skip
    print(header + "\n" + "-" * len(header))
    for r in reads:
        d, s = r["direct"], r["service"]
        print(
            f"{r['operation']:<45} {d['p50_ms']:10.1f} {d['p95_ms']:10.1f} {s['p50_ms']:11.1f} "
            f"{s['p95_ms']:10.1f} {s['p50_ms'] / d['p50_ms']:6.1f}x  "
            f"{'yes' if r['same_rows'] else 'NO'}"
        )
    print("-" * len(header))
    for group in ("filtered", "semantic", "leaderboard"):
        d, s = judged[f"{group}_direct"], judged[f"{group}_service"]
        print(
            f"{'worst ' + group + ' p50':<45} {d['worst_p50_ms']:10.1f} {target_text(d):>10} "
            f"{s['worst_p50_ms']:11.1f} {target_text(s):>10}"
        )
    d, s = writes["direct"], writes["service"]
    label = f"record run ({d['writers']} writers x {d['runs_per_writer']}), runs/s"
    print(f"{label:<45} {d['runs_per_s']:10.1f} {'':>10} {s['runs_per_s']:11.1f}")
    print(
        f"{'  runs landed':<45} {str(d['runs_landed']) + '/' + str(d['runs_expected']):>10} "
        f"{'':>10} {str(s['runs_landed']) + '/' + str(s['runs_expected']):>11}"
    )
    dc, sc = d["call_ms"], s["call_ms"]
    print(
        f"{'  one call p50 / p95 (ms)':<45} {dc['p50_ms']:10.1f} {dc['p95_ms']:10.1f} "
        f"{sc['p50_ms']:11.1f} {sc['p95_ms']:10.1f}"
    )
    served = report["service"]
    print(
        f"service: ready in {served['ready_s']} s, HTTP statuses {served['statuses']}, "
        f"exit code {served['exit_code']}"
    )
    busy = report["cpu_during_reads"]
    if busy and busy["other_cores_busy"] > 0.1:
        print(f"WARNING: other processes used {busy['other_cores_busy']} cores during the reads")


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--models", type=int, default=100_000)
    parser.add_argument("--results", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--runs", type=int, default=50, help="runs per writer")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--registry-location",
        help="run on PostgreSQL: postgresql://USER@HOST:PORT/DB (an empty database; its tables "
        "are created and filled); default a DuckDB file in a temporary folder",
    )
    parser.add_argument(
        "--out", type=Path, help="default benchmarks/results/service_bench_<backend>_<models>.json"
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    if args.registry_location:
        direct = rb.empty_postgres_registry(args.registry_location)
        location = args.registry_location
    else:
        direct = Registry(folder / "registry.duckdb", actor="bench")
        location = str(direct.path)
    backend = "duckdb" if rb.is_duckdb(direct) else "postgresql"
    print(f"filling {direct.display_location}: {args.models:,} models, {args.results:,} results")
    load = rb.fill_registry(direct, args.models, args.results, args.seed)
    embed_texts(["warm up"])  # the client's MiniLM, loaded once for both sides
    with served(location, folder) as service:
        print(f"service ready in {service['ready_s']} s at {service['url']}")
        remote = Registry(service["url"])
        meter, service_cpu = rb.CpuMeter(), process_cpu_s(service["pid"])
        reads = measure_reads(direct, remote, args.repeats)
        cpu = meter.report()
        if cpu is not None:  # the service's CPU is ours, not other people's
            cpu["service_cpu_s"] = round(process_cpu_s(service["pid"]) - service_cpu, 1)
            cpu["other_cpu_s"] = round(max(0.0, cpu["other_cpu_s"] - cpu["service_cpu_s"]), 1)
            cpu["other_cores_busy"] = round(cpu["other_cpu_s"] / cpu["wall_s"], 2)
        writes = {
            side: record_runs(where, direct, side, args.writers, args.runs, folder)
            for side, where in (("direct", location), ("service", service["url"]))
        }
    return {
        "created": datetime.now().isoformat(timespec="seconds"),
        "backend": backend,
        "models": args.models,
        "results": args.results,
        "registry": direct.display_location,
        "machine": rb.machine_info(),
        "parameters": {k: v for k, v in vars(args).items() if k != "worker"}
        | {"registry_location": args.registry_location and direct.display_location, "out": None},
        "load": load,
        "service": service,
        "reads": reads,
        "targets": verdicts(reads),
        "record_runs": writes,
        "cpu_during_reads": cpu,
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        location, template, tag, runs, go_file = args.worker
        writer(location, template, tag, int(runs), go_file)
        return
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="service-bench-") as folder:
        report = run(args, Path(folder))
    report["total_s"] = round(time.perf_counter() - started, 1)
    out = args.out or Path(
        f"benchmarks/results/service_bench_{report['backend']}_{args.models}.json"
    )
    report["parameters"]["out"] = str(out)
    print_table(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nWrote {out} ({report['total_s']} s in all)")


if __name__ == "__main__":
    main()
