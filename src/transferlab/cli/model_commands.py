"""Using trained versions: `transferlab predict` and `transferlab merge`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from transferlab.cli.output import emit_json, format_table
from transferlab.errors import TransferlabError
from transferlab.registry import Registry
from transferlab.registry.api import require_registry_file


def cmd_predict(args: argparse.Namespace) -> int:
    from transferlab.predict import predict

    texts = list(args.texts)
    if args.file:
        stream = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
        with stream:
            texts += [line.rstrip("\n") for line in stream if line.strip()]
    if not texts:
        raise TransferlabError(
            "No text to classify.", "Give texts as arguments or --file FILE (one per line)."
        )
    require_registry_file(args.registry)
    predictions = predict(Registry(args.registry), args.version, texts)
    if args.json:
        emit_json([{"text": t, **p} for t, p in zip(texts, predictions, strict=True)])
        return 0
    rows = [
        {"label": p["label"], "score": p["score"], "text": t}
        for t, p in zip(texts, predictions, strict=True)
    ]
    print(format_table(rows, ["label", "score", "text"], max_width=80))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from transferlab.predict import merge

    require_registry_file(args.registry)
    version = merge(Registry(args.registry), args.version, output_dir=args.output_dir)
    if args.json:
        emit_json(asdict(version))
    else:
        print(f"merged {args.version} -> {version.ref} ({version.kind}) in {version.uri}")
    return 0


def add_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    predict = commands.add_parser(
        "predict",
        parents=[common],
        help="classify texts with a registered version",
        description="Load a version (base + adapter, or a merged/full model) and classify texts.",
    )
    predict.set_defaults(handler=cmd_predict)
    predict.add_argument("version", help="name, name:N or name@alias")
    predict.add_argument("texts", nargs="*", help="texts to classify")
    predict.add_argument("--file", help="a file with one text per line ('-' for stdin)")

    merge = commands.add_parser(
        "merge",
        parents=[common],
        help="merge an adapter into a standalone model version",
        description="Write base + adapter as one model, registered as a 'merged' version.",
    )
    merge.set_defaults(handler=cmd_merge)
    merge.add_argument("version", help="an adapter version: name, name:N or name@alias")
    merge.add_argument("--output-dir", help="where to write it (default: next to the adapter)")
