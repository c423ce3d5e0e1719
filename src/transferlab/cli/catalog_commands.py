"""`transferlab sync CATALOG.yaml`: the catalog as code (checked, diffed, applied)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from transferlab.cli.output import emit_json, format_table
from transferlab.registry import Registry

# The catalog models the registry has that the file does not list: named up to this many.
_MISSING_SHOWN = 10


def cmd_sync(args: argparse.Namespace) -> int:
    from transferlab.catalog.policy import load_policy
    from transferlab.catalog.sync import sync_catalog_file

    policy = load_policy(args.policy)
    registry = Registry(args.registry)
    report = sync_catalog_file(
        registry, args.catalog, policy, dry_run=args.dry_run, profile=not args.no_profile
    )
    if args.json:
        emit_json(report.to_dict())
    elif report.status == "refused":
        _print_refusal(report)
    else:
        _print_report(report)
    return 1 if report.status in ("refused", "failed") else 0


def _print_refusal(report) -> None:
    problems = report.plan.problems
    for problem in problems:
        print(problem, file=sys.stderr)
    entries = report.summary()["refused"]
    total = len(report.plan.catalog.entries)
    print(
        f"sync refused: {len(problems)} problem{'s' if len(problems) != 1 else ''} in {entries} "
        f"of {total} entries of {report.plan.catalog.path}; nothing was changed.",
        file=sys.stderr,
    )


def _short(value: Any) -> Any:
    if isinstance(value, str) and "\n" in value:
        return value.replace("\n", " ")
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "{}"
    return value


def _rows(report) -> list[dict]:
    rows = []
    for entry in report.plan.entries:
        if entry.change == "add":
            rows.append(
                {
                    "change": "add",
                    "model": entry.name,
                    "key": "-",
                    "new": f"{entry.record.source} {entry.record.source_ref}",
                }
            )
        for key, (old, new) in entry.changes.items():
            rows.append(
                {
                    "change": "update",
                    "model": entry.name,
                    "key": key,
                    "old": _short(old),
                    "new": _short(new),
                }
            )
        if entry.weights == "import":
            then = " and profile" if report.plan.profile else " (--no-profile)"
            rows.append(
                {
                    "change": "import",
                    "model": entry.name,
                    "key": "weights",
                    "new": f"{entry.folder}{then}",
                }
            )
        elif entry.weights == "profile":
            rows.append(
                {
                    "change": "profile",
                    "model": entry.name,
                    "key": "weights",
                    "new": entry.version_id,
                }
            )
    return rows


def _print_report(report) -> None:
    plan = report.plan
    heading = f"catalog   {plan.catalog.path} ({len(plan.catalog.entries)} entries)"
    print(f"{heading} -> registry {report.registry}")
    if report.dry_run:
        print("dry run: nothing is written")
    if report.status == "unchanged":
        print("\nnothing to change: the registry already matches the file; nothing written")
    else:
        print()
        print(format_table(_rows(report), ["change", "model", "key", "old", "new"], 48))
    notes: dict[str, list[str]] = {}
    for entry in plan.entries:
        if entry.note:
            notes.setdefault(entry.note, []).append(entry.name)
    for note, names in notes.items():
        print(f"\n{note}:\n  {', '.join(names)}")
    if report.failed:
        print("\nfailed")
        for failure in report.failed:
            print(f"  {failure['name']} ({failure['action']}): {failure['error']}")
    if plan.not_in_file:
        shown = ", ".join(plan.not_in_file[:_MISSING_SHOWN])
        more = len(plan.not_in_file) - _MISSING_SHOWN
        shown += f" and {more} more (--json lists them)" if more > 0 else ""
        print(
            f"\nnot in the file, left as they are: {len(plan.not_in_file)} catalog model(s) of "
            f"the registry: {shown}"
        )
    counts = report.summary()
    line = ", ".join(
        f"{key} {counts[key]}"
        for key in ("added", "updated", "unchanged", "imported", "profiled", "refused")
    )
    if counts["failed"]:
        line += f", failed {counts['failed']}"
    print(f"\n{'planned: ' if report.dry_run else ''}{line}")
    if report.run_id:
        print(f"recorded as run {report.run_id} by {report.actor} (transferlab runs --kind sync)")


def add_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sync = commands.add_parser(
        "sync",
        parents=[common],
        help="bring the registry in line with a catalog file (checked against a policy)",
        description="Check a catalog file against the catalog policy, show what differs from "
        "the registry, then add and update its models in one transaction, import and profile "
        "the weights that are on this machine, and record the sync. Nothing is written when "
        "any entry is refused (exit 1), with --dry-run, or when nothing differs.",
    )
    sync.set_defaults(handler=cmd_sync)
    sync.add_argument("catalog", help="catalog YAML file (the format of the seed catalog)")
    sync.add_argument(
        "--dry-run", action="store_true", help="check and show the diff; write nothing"
    )
    sync.add_argument("--no-profile", action="store_true", help="import weights without profiling")
    sync.add_argument(
        "--policy",
        help="catalog policy YAML (default: $TRANSFERLAB_CATALOG_POLICY or the packaged "
        "catalog_policy.yaml)",
    )
