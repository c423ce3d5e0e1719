"""The main job on the embedded defaults (`make demo`): each step reuses what exists.

1. create the registry, load the curated catalog, register and profile the installed MiniLM;
2. find a base model for short English support messages that runs on this machine.
"""

from __future__ import annotations

import sys
import time

from transferlab.cli.output import format_table, human_size
from transferlab.errors import TransferlabError
from transferlab.initialize import initialize
from transferlab.registry import Registry
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
    return {"init": report, "candidates": [row["name"] for row in candidates]}


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
