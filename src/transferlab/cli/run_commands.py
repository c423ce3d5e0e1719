"""Template runs: `transferlab run TEMPLATE -p name value ... [-f params.yaml]`."""

from __future__ import annotations

import argparse

from transferlab.cli.output import emit_json
from transferlab.registry import Registry


def cmd_run(args: argparse.Namespace) -> int:
    from transferlab.runner import parse_cli_value, read_parameter_file, run_template

    parameters: dict = {}
    for path in args.parameter_file or []:
        parameters.update(read_parameter_file(path))
    for name, value in args.parameter or []:
        parameters[name] = parse_cli_value(value)
    outcome = run_template(
        args.template,
        parameters,
        registry=Registry(args.registry),
        output_dir=args.output_dir,
        progress_bar=not args.json and not args.quiet,
    )
    if args.json:
        emit_json(
            {
                "run_id": outcome.run_id,
                "status": outcome.status,
                "versions": outcome.versions,
                "output_notebook": str(outcome.output_notebook),
                "report": str(outcome.report) if outcome.report else None,
                "error": outcome.error,
                "recommendation": outcome.recommendation,
            }
        )
    else:
        print(f"run       {outcome.run_id}")
        print(f"status    {outcome.status}")
        if outcome.versions:
            print(f"version   {', '.join(outcome.versions)}")
        print(f"notebook  {outcome.output_notebook}")
        if outcome.report:
            print(f"report    {outcome.report}")
        if outcome.recommendation:
            from transferlab.discovery import finetune_command

            print(f"next      {finetune_command(outcome.recommendation)}")
        if outcome.error:
            print(f"error     {outcome.error}")
    return 0 if outcome.succeeded else 1


def cmd_report(args: argparse.Namespace) -> int:
    from transferlab.registry.api import require_registry_file
    from transferlab.report import write_run_report

    require_registry_file(args.registry)
    report = write_run_report(Registry(args.registry), args.run_id, args.output, pdf=args.pdf)
    if args.json:
        emit_json(
            {
                "run_id": args.run_id,
                "report": str(report.html),
                "pdf": str(report.pdf) if report.pdf else None,
                "figures": report.figures,
            }
        )
    else:
        print(f"report  {report.html} ({report.figures} figures)")
        if report.pdf:
            print(f"pdf     {report.pdf}")
    return 0


def add_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    run = commands.add_parser(
        "run",
        parents=[common],
        help="run a template (discover, finetune, benchmark) through papermill",
        description="Run a template through papermill; the run is recorded in the registry.",
    )
    run.set_defaults(handler=cmd_run)
    run.add_argument("template", help="discover | finetune | benchmark, or a path to a .ipynb")
    run.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="a template parameter (repeatable); values are read as YAML",
    )
    run.add_argument(
        "-f",
        "--parameter-file",
        action="append",
        metavar="YAML",
        help="a YAML file of parameters (-p values override it)",
    )
    run.add_argument("--output-dir", help="where the output notebook goes (default outputs/runs)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    report = commands.add_parser(
        "report",
        parents=[common],
        help="render a run's executed notebook as a self-contained HTML page (and PDF)",
        description="Render a run's output notebook to HTML with the code hidden.",
    )
    report.set_defaults(handler=cmd_report)
    report.add_argument("run_id")
    report.add_argument("--output", help="HTML path (default: beside the output notebook)")
    report.add_argument(
        "--pdf",
        action="store_true",
        default=None,
        help="also print it to PDF beside the HTML (headless Chromium; plots drawn, code hidden)",
    )
