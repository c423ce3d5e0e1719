"""The main job on the embedded defaults (`make demo`): each step reuses what exists.

1. create the registry, load the curated catalog, register and profile the installed MiniLM;
2. discover: shortlist the registered models for short English support messages, score those
   that run here on the sample data (discover template) and recommend a base and settings;
3. fine-tune the recommended base with the recommended settings (finetune template);
4. benchmark the adapter on the bundled suite and render the HTML report and its PDF.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from transferlab.cli.output import format_table, human_size
from transferlab.discovery import finetune_command, recommendation
from transferlab.errors import TransferlabError
from transferlab.initialize import initialize
from transferlab.registry import Registry
from transferlab.report import find_chromium, write_run_report
from transferlab.runner import RunOutcome, run_template

DEMO_QUERY = "small English sentence encoder for short customer support messages"
DEMO_DISCOVERY = {"query": DEMO_QUERY, "license": "commercial"}


def _step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.monotonic()


def run_demo(registry: Registry) -> dict:
    started = _step(f"registry {registry.display_location}")
    report = initialize(registry)
    print(
        f"catalog: {report['models_inserted']} models added, {report['models_unchanged']} "
        f"already there; local MiniLM: {report['local_minilm']}; "
        f"profiled: {', '.join(report['profiled']) or 'nothing new'} "
        f"({time.monotonic() - started:.1f} s)"
    )

    started = _step("discover: shortlist, score on the sample data, recommend")
    discovery = reusable_run(registry, "discover", DEMO_DISCOVERY)
    if discovery is None:
        discovery = registry.get_run(_run_or_fail("discover", DEMO_DISCOVERY, registry).run_id)
    else:
        print(f"reusing discovery run {discovery['run_id']}")
    table = discovery["metrics"]["table"]
    for row in table:
        row["params"] = human_size(row["parameters"])
        row["score"] = _score_text(row)
    print(format_table(table, ["rank", "model", "score", "params", "license", "status"]))
    print(discovery["metrics"].get("explanation", ""))
    recommended = recommendation(registry, discovery["run_id"])
    print(f"next: {finetune_command(recommended)}")
    print(f"({time.monotonic() - started:.1f} s)")

    started = _step(f"fine-tune {recommended['base']} with the recommended settings")
    adapter = reusable_version(registry, "finetune", recommended)
    if adapter:
        print(f"reusing {adapter} from an earlier run (delete the registry to start over)")
    else:
        outcome = _run_or_fail("finetune", recommended, registry)
        adapter = outcome.versions[0]
        print(f"run {outcome.run_id} -> {adapter}; notebook {outcome.output_notebook}")
    scores = {
        r["metric"]: r["value"]
        for r in registry.results(version_id=adapter)
        if r["split"] == "test"
    }
    print(
        f"test accuracy {scores.get('accuracy', float('nan')):.3f}, macro-F1 "
        f"{scores.get('macro_f1', float('nan')):.3f} ({time.monotonic() - started:.1f} s)"
    )

    started = _step(f"benchmark {adapter} on the support_intents suite")
    parameters = {"versions": [adapter], "suite": "support_intents"}
    run = reusable_run(registry, "benchmark", parameters)
    if run and run.get("output_notebook") and Path(run["output_notebook"]).is_file():
        benchmark_run = run["run_id"]
        print(f"reusing benchmark run {benchmark_run}")
    else:
        benchmark_run = _run_or_fail("benchmark", parameters, registry).run_id
    report_path, pdf_path = _report_files(registry, benchmark_run)
    print(f"({time.monotonic() - started:.1f} s)")
    print(f"\nReport: {report_path}")
    print(f"PDF:    {pdf_path or 'not written: no Chromium here (apt-get install chromium)'}")
    return {
        "init": report,
        "discovery_run": discovery["run_id"],
        "candidates": [row["model"] for row in table],
        "recommendation": recommended,
        "adapter": adapter,
        "report": str(report_path),
        "pdf": str(pdf_path) if pdf_path else None,
    }


def _report_files(registry: Registry, run_id: str) -> tuple[Path, Path | None]:
    """The benchmark's HTML report and, where Chromium can print it, its PDF beside it."""
    report = write_run_report(registry, run_id, pdf=find_chromium() is not None)
    return report.html, report.pdf


def _score_text(row: dict) -> str:
    if row.get("cv_accuracy") is None:
        return "-"
    return f"{row['cv_accuracy']:.3f} ± {row['cv_accuracy_std']:.3f}"


def _run_or_fail(template: str, parameters: dict, registry: Registry) -> RunOutcome:
    outcome = run_template(template, parameters, registry=registry)
    if not outcome.succeeded:
        raise TransferlabError(
            f"The {template} run {outcome.run_id} failed: {outcome.error}",
            f"Open {outcome.output_notebook} to see where.",
        )
    return outcome


def reusable_run(registry: Registry, kind: str, parameters: dict) -> dict | None:
    """The latest succeeded run of `kind` asked with exactly these parameters."""
    for run in registry.runs(kind=kind, status="succeeded"):
        if run["requested"] == parameters:
            return run
    return None


def reusable_version(registry: Registry, kind: str, parameters: dict) -> str | None:
    """The version made by the latest succeeded run of `kind` asked with these parameters."""
    run = reusable_run(registry, kind, parameters)
    if run is None:
        return None
    made = registry.run_version_ids(run["run_id"], by_version=True)
    return made[0] if made else None


def main() -> int:
    try:
        run_demo(Registry())
    except TransferlabError as error:
        print(f"error: {error.problem}", file=sys.stderr)
        if error.fix:
            print(f"  fix: {error.fix}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
