"""`transferlab methods`: the fine-tuning methods this installation can run (built-ins and
those other packages add through the `transferlab.methods` entry points)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from transferlab.cli.output import emit_json, format_table

COLUMNS = ["name", "display_name", "learning_rate", "device", "version_kind", "description"]


def method_rows() -> list[dict[str, Any]]:
    from transferlab.finetuning.methods import all_methods, method_origin

    return [
        {
            "name": method.name,
            "display_name": method.display_name,
            "description": method.description,
            "default_learning_rate": method.default_learning_rate,
            "catalog_learning_rate_key": method.catalog_learning_rate_key,
            "device_needs": method.device_needs,
            "version_kind": method.version_kind,
            "uses_lora_settings": method.uses_lora_settings,
            "origin": method_origin(method.name),
        }
        for method in all_methods()
    ]


def cmd_methods(args: argparse.Namespace) -> int:
    from transferlab.finetuning.methods import broken_methods

    rows = method_rows()
    for reason in broken_methods().values():
        print(f"warning: not loaded: {reason}", file=sys.stderr)
    if args.json:
        emit_json(rows)
        return 0
    table = [
        {**row, "learning_rate": row["default_learning_rate"], "device": row["device_needs"]}
        for row in rows
    ]
    print(format_table(table, COLUMNS, max_width=80))
    return 0


def add_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    methods = commands.add_parser(
        "methods",
        parents=[common],
        help="list the fine-tuning methods (built-in and from installed packages)",
        description="The fine-tuning methods `-p method NAME` takes: default learning rate, "
        "what the machine needs, and the kind of version each registers. Packages add methods "
        "through the entry-point group transferlab.methods.",
    )
    methods.set_defaults(handler=cmd_methods)
