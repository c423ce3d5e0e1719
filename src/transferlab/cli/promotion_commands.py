"""Promotion commands: promote (with gates), leaderboard, card."""

from __future__ import annotations

import argparse
import sys

from transferlab.cli.output import emit_json, format_table
from transferlab.registry import Registry
from transferlab.registry.api import require_registry_file


def _registry(args: argparse.Namespace) -> Registry:
    require_registry_file(args.registry)
    return Registry(args.registry)


def gate_lines(decision) -> list[str]:
    width = max(len(g.name) for g in decision.gates)
    lines = []
    for gate in decision.gates:
        status = {"failed": "FAILED", "passed": "passed", "skipped": "skipped"}[gate.status]
        for number, line in enumerate(gate.lines):
            label = f"{status:7} {gate.name:{width}}" if number == 0 else " " * (8 + width)
            lines.append(f"  {label}  {line}")
    return lines


def cmd_promote(args: argparse.Namespace) -> int:
    from transferlab.promotion import PromotionRefused, load_policy, promote

    registry = _registry(args)
    policy = load_policy(args.policy)
    try:
        outcome = promote(
            registry, args.version, args.to, args.reason, force=args.force, policy=policy
        )
    except PromotionRefused as refused:
        decision = refused.decision
        if args.json:
            emit_json({"moved": False, "forced": False, **decision.to_dict()})
        else:
            print(f"{decision.model_name}@{decision.target} stays {decision.holder or '(unset)'}")
            print("\n".join(gate_lines(decision)))
        # The gates are listed above; stderr says only that it was refused and what to do.
        print(f"error: {refused.problem.splitlines()[0]}", file=sys.stderr)
        print(f"  fix: {refused.fix}", file=sys.stderr)
        return 1
    decision = outcome.decision
    if args.json:
        emit_json(outcome.to_dict())
        return 0
    alias = f"{decision.model_name}@{decision.target}"
    if outcome.request is not None:
        request = outcome.request
        print(
            f"opened request #{request['request_id']}: {alias} "
            f"{outcome.from_version or '(unset)'} -> {decision.version_id}, the gates hold; "
            f"another approver decides it with `transferlab approve {request['request_id']}` "
            f"(or `transferlab reject {request['request_id']} --reason ...`)"
        )
    elif not outcome.moved:
        print(f"{alias} is already {decision.version_id}: nothing to do")
    elif outcome.forced:
        failed = ", ".join(g.name for g in decision.failed)
        past = f"past failed gate(s) {failed}" if failed else "without a second approval"
        print(
            f"FORCED {alias}: {outcome.from_version or '(unset)'} -> {decision.version_id} "
            f"{past}; the audit log records it as forced"
        )
    else:
        print(f"promoted {alias}: {outcome.from_version or '(unset)'} -> {decision.version_id}")
    print("\n".join(gate_lines(decision)))
    return 0


def _cell(summary: dict | None, with_spread: bool = False) -> str:
    if summary is None:
        return "-"
    text = f"{summary['mean']:.4f}"
    if with_spread and summary.get("std") is not None:
        text += f" ±{summary['std']:.4f}"
    return text


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from transferlab.promotion import leaderboard, load_policy

    rows = leaderboard(
        _registry(args),
        args.suite,
        args.metric,
        task=args.task,
        split=args.split,
        policy=load_policy(args.policy),
    )
    if args.json:
        emit_json(rows)
        return 0
    others = list(rows[0]["metrics"]) if rows else []
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["split"]), []).append(row)
    blocks = []
    for (task, split), group in groups.items():
        where = "/".join(part for part in (args.suite, task, split) if part)
        table = [
            {
                "rank": row["rank"],
                "version": row["version_id"],
                "kind": row["kind"],
                "parent": row["parent_version_id"],
                args.metric: f"{row['mean']:.4f}",
                "±": f"{row['std']:.4f}" if row["std"] is not None else "-",
                "n": row["n"],
                **{name: _cell(row["metrics"][name]) for name in others},
            }
            for row in group
        ]
        columns = ["rank", "version", "kind", "parent", args.metric, "±", "n", *others]
        blocks.append(
            f"{where}: ranked by {args.metric} (mean over seeds, ± standard deviation, "
            f"n seeds)\n{format_table(table, columns)}"
        )
    print("\n\n".join(blocks))
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from transferlab.card import render_card, write_card

    registry = _registry(args)
    if args.output == "-":
        sys.stdout.write(render_card(registry, args.version))
        return 0
    path = write_card(registry, args.version, args.output)
    version = registry.resolve(args.version)
    if args.json:
        emit_json({"version_id": version.version_id, "path": str(path)})
    else:
        print(f"wrote the model card of {version.ref} to {path}")
    return 0


def add_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    def command(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    policy_help = (
        "promotion policy YAML (default: $TRANSFERLAB_PROMOTION_POLICY or the packaged "
        "promotion_policy.yaml)"
    )
    promote = command(
        "promote",
        cmd_promote,
        "move a model's staging/production alias to a version when the promotion gates hold "
        "(production on a team registry: open a request for another approver)",
    )
    promote.add_argument("version", help="name:N or name@alias")
    promote.add_argument("--to", required=True, choices=["staging", "production"])
    promote.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    promote.add_argument(
        "--force",
        action="store_true",
        help="move even if gates fail (recorded as forced); on a team registry: an admin's, "
        "and production moves without approval",
    )
    promote.add_argument("--policy", help=policy_help)

    board = command(
        "leaderboard", cmd_leaderboard, "versions ranked on a benchmark suite (mean over seeds)"
    )
    board.add_argument("--suite", required=True)
    board.add_argument("--metric", default="accuracy", help="ranking metric (default: accuracy)")
    board.add_argument("--task", help="only this task of the suite")
    board.add_argument("--split", help="only this split")
    board.add_argument("--policy", help=policy_help + "; names the key-metric columns")

    card = command("card", cmd_card, "write a Hugging Face style model card (README.md)")
    card.add_argument("version", help="name, name:N or name@alias")
    card.add_argument(
        "--output",
        help="file to write ('-' for stdout; default: README.md in the version's folder when "
        "transferlab wrote it, else ./<name>-card.md)",
    )
