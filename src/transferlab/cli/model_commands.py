"""Using trained versions: `transferlab predict` and `transferlab merge`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict

from transferlab.cli.output import emit_json, format_table
from transferlab.errors import TransferlabError
from transferlab.registry import Registry
from transferlab.registry.api import require_registry_file


def cmd_predict(args: argparse.Namespace) -> int:
    from transferlab.predict import predict

    texts = list(args.texts)
    if args.file:
        texts += _read_texts(args.file)
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


def _read_texts(file: str) -> list[str]:
    """The non-blank lines of a file ('-': standard input)."""
    if file == "-":
        return [line.rstrip("\n") for line in sys.stdin if line.strip()]
    try:
        with open(file, encoding="utf-8") as stream:
            return [line.rstrip("\n") for line in stream if line.strip()]
    except FileNotFoundError as error:
        raise TransferlabError(
            f"No file {file} to read texts from.",
            "Give a text file with one text per line (or '-' for standard input).",
        ) from error
    except IsADirectoryError as error:
        raise TransferlabError(
            f"{file} is a folder, not a text file.", "Give a file with one text per line."
        ) from error
    except UnicodeDecodeError as error:
        raise TransferlabError(
            f"{file} is not UTF-8 text ({error.reason} at byte {error.start}).",
            "Save it as UTF-8 text, one text per line.",
        ) from error
    except OSError as error:
        raise TransferlabError(
            f"Cannot read {file}: {error.strerror}.", "Check the file and its permissions."
        ) from error


class _TextsParser(argparse.ArgumentParser):
    """predict's parser: texts after an option count too (`predict VERSION --json "text"`).

    argparse fills a positional list with the words before the first option only (none, after
    VERSION) and calls the words after it unrecognized; here those words are texts as well.
    """

    def parse_known_args(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        namespace, extras = super().parse_known_args(args, namespace)
        if hasattr(namespace, "texts") and extras and not any(_is_option(w) for w in extras):
            namespace.texts = [*namespace.texts, *extras]
            extras = []
        return namespace, extras


def _is_option(word: str) -> bool:
    return word.startswith("-") and word != "-" and not word[1:2].isdigit()


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
    predict.__class__ = _TextsParser  # argparse builds sub-parsers itself
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
