"""Registry commands: init, import, search, show, profile, alias, history, runs."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from transferlab.cli.output import emit_json, format_table, human_size
from transferlab.registry import Registry
from transferlab.registry.api import require_registry_file
from transferlab.registry.records import (
    MODEL_DISPLAY_FIELDS,
    PROFILE_DISPLAY_FIELDS,
    RUN_STATUSES,
)
from transferlab.registry.refs import parse_version_ref
from transferlab.registry.writes import PROFILE_COLUMNS


def _registry(args: argparse.Namespace, must_exist: bool = True) -> Registry:
    if must_exist:
        require_registry_file(args.registry)
    return Registry(args.registry)


def cmd_init(args: argparse.Namespace) -> int:
    from transferlab.initialize import initialize

    report = initialize(
        _registry(args, must_exist=False), args.catalog, profile=not args.no_profile
    )
    if args.json:
        emit_json(report)
        return 0
    print(f"registry      {report['registry']} (schema {report['schema_version']})")
    print(
        f"catalog       {report['models_inserted']} added, {report['models_updated']} updated, "
        f"{report['models_unchanged']} unchanged; {report['versions_added']} hub versions added"
    )
    print(f"local MiniLM  {report['local_minilm'] or 'not installed'}")
    print(f"profiled      {', '.join(report['profiled']) or 'nothing new'}")
    print(f"embedded      {report['embedded']} model descriptions for semantic search")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from transferlab.catalog.importers import IMPORTERS

    registry = _registry(args, must_exist=False)
    importer = IMPORTERS[args.source]
    options = {"name": args.name, "task": args.task, "license": args.license}
    if args.source == "local":
        options["profile"] = not args.no_profile
    version = importer(registry, args.ref, **options)
    if args.json:
        emit_json(asdict(version))
    else:
        print(f"registered {version.ref} ({version.kind}) from {version.uri}")
        if version.metadata.get("not_profiled"):
            print(f"not profiled: {version.metadata['not_profiled']}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from transferlab.search import (
        SearchFilters,
        explain_empty,
        parse_parameter_count,
        search_models,
    )

    registry = _registry(args)
    filters = SearchFilters(
        task=args.task,
        license=args.license,
        max_params=parse_parameter_count(args.max_params),
        source=args.source,
        tags=args.tag or [],
        runnable_here=args.runnable_here,
        query=args.query,
        limit=args.limit,
    )
    rows = search_models(registry, filters)
    if args.json:
        emit_json(rows)
        return 0
    if not rows:
        print(explain_empty(registry, filters))
        return 1
    for row in rows:
        row["params"] = human_size(row["parameters"])
    columns = ["name", "task", "source", "params", "license", "commercial_use"]
    if args.query:
        columns.insert(0, "score")
    print(format_table(rows, columns))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    registry = _registry(args)
    ref = parse_version_ref(args.model)
    name = ref.model_name
    model = registry.get_model(name)
    if ref.version is not None or ref.alias is not None:
        registry.resolve(ref)  # name:N and name@alias must exist: show says which do
    versions = [asdict(v) for v in registry.versions(name)]
    aliases = registry.aliases(name)
    version_ids = [v["version_id"] for v in versions]
    profiles = [p for p in registry.profiles() if p["version_id"] in version_ids]
    results = registry.result_means_of_model(name)
    if args.json:
        emit_json(
            {
                "model": model,
                "versions": versions,
                "aliases": aliases,
                "profiles": profiles,
                "results": results,
            }
        )
        return 0
    for key in ("name", *MODEL_DISPLAY_FIELDS):
        value = model[key]
        if key == "parameters":
            value = f"{human_size(value)} ({value})" if value else None
        if key == "size_bytes":
            value = human_size(value, "B")
        print(f"{key:15} {format_table([{'v': value}], ['v']).splitlines()[-1]}")
    if model["description"]:
        print(f"\n{model['description']}")
    if model["finetune"]:
        print(f"\nrecommended fine-tuning: {model['finetune']}")
    print("\nversions")
    print(format_table(versions, ["version_id", "kind", "uri", "parent_version_id", "run_id"], 80))
    if aliases:
        print("\naliases")
        print(format_table(aliases, ["alias", "version_id", "updated_at"]))
    if profiles:
        print("\nprofile")
        print(format_table(profiles, list(PROFILE_DISPLAY_FIELDS)))
    if results:
        print("\nresults")
        print(
            format_table(
                results, ["version_id", "suite", "dataset", "split", "metric", "value", "n"]
            )
        )
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from transferlab.catalog.importers import profile_version

    registry = _registry(args)
    version = registry.resolve(args.model)
    profile = profile_version(registry, version)
    if args.json:
        emit_json({"version_id": version.version_id, **profile})
        return 0
    print(f"profile of {version.ref} on {profile.get('device', 'cpu')}")
    for key in PROFILE_COLUMNS:
        print(f"  {key:18} {profile.get(key)}")
    return 0


def cmd_alias(args: argparse.Namespace) -> int:
    registry = _registry(args)
    if args.alias_command == "set":
        moved = registry.set_alias(args.version, args.alias, reason=args.reason)
        if args.json:
            emit_json(moved)
        else:
            print(
                f"{moved['model']}@{moved['alias']}: {moved['from'] or '(unset)'} -> {moved['to']}"
            )
    elif args.alias_command == "remove":
        registry.remove_alias(args.model, args.alias, reason=args.reason)
        if not args.json:
            print(f"removed {args.model}@{args.alias}")
    else:
        rows = registry.aliases(args.model)
        if args.json:
            emit_json(rows)
        else:
            print(format_table(rows, ["model_name", "alias", "version_id", "updated_at"]))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    rows = _registry(args).history(args.model)
    if args.json:
        emit_json(rows)
        return 0
    for row in rows:
        moved = row["from_version"] or row["to_version"]  # catalog changes move no version
        row["move"] = f"{row['from_version'] or '-'} -> {row['to_version'] or '-'}" if moved else ""
        row["forced"] = "FORCED" if row["forced"] else ""
        request = (row["details"] or {}).get("request_id")  # four-eyes: request and decision
        if request is not None:
            row["request"] = f"#{request}"
            row["move"] = row["move"] or f"asks {row['details'].get('version')}"
    columns = ["occurred_at", "actor", "action", "model_name", "alias", "move", "reason", "forced"]
    if any("request" in row for row in rows):
        columns.insert(columns.index("move") + 1, "request")
    print(format_table(rows, columns) if rows else "nothing recorded in the audit log")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    registry = _registry(args)
    rows = registry.runs(kind=args.kind, status=args.status, limit=args.limit)
    if args.json:
        emit_json(rows)
        return 0
    columns = ["run_id", "kind", "status", "started_at", "finished_at", "output_notebook", "error"]
    if rows:
        print(format_table(rows, columns, max_width=50))
    elif args.kind or args.status:
        kinds = registry.run_kinds()
        asked = ", ".join(
            f"{key} {value!r}"
            for key, value in (("kind", args.kind), ("status", args.status))
            if value
        )
        print(f"no runs with {asked}; kinds recorded: {', '.join(kinds) or 'none'}")
    else:
        print("no runs recorded")
    return 0


def add_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    def command(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    init = command("init", cmd_init, "create the registry and load the curated catalog")
    init.add_argument("--catalog", help="catalog YAML to load instead of the seed catalog")
    init.add_argument("--no-profile", action="store_true", help="skip profiling local models")

    imp = command("import", cmd_import, "register a model from a local folder or a hub")
    imp.add_argument("source", choices=["local", "hf", "torchhub", "tfhub"])
    imp.add_argument("ref", help="folder (local), model id (hf) or hub reference")
    imp.add_argument("--name", help="registry name (default: the folder name or hub id)")
    imp.add_argument(
        "--task",
        help="task: needed for torchhub/tfhub references not in the catalog; for local and hf "
        "it replaces the detected task",
    )
    imp.add_argument(
        "--license",
        help="licence id such as apache-2.0 (unknown ids are refused); for local and hf it fills "
        "in a licence the model card does not give",
    )
    imp.add_argument("--no-profile", action="store_true", help="skip profiling (local only)")

    search = command("search", cmd_search, "find models by filters and semantic search")
    search.add_argument("query", nargs="?", help="free text, e.g. 'multilingual embeddings'")
    search.add_argument("--task")
    search.add_argument(
        "--license", default="any", help="any | commercial | open | a licence id (default: any)"
    )
    search.add_argument("--max-params", help="e.g. 150M or 1.5B")
    search.add_argument("--source", help="hf | local | torchhub | tfhub")
    search.add_argument("--tag", action="append", help="required tag (repeatable)")
    search.add_argument(
        "--runnable-here", action="store_true", help="only models with weights on this machine"
    )
    search.add_argument("--limit", type=int, default=20)

    show = command("show", cmd_show, "a model's metadata, versions, aliases, profile and results")
    show.add_argument("model", help="model name (name:N and name@alias show the same model)")

    profile = command("profile", cmd_profile, "measure size, load time, latency and memory")
    profile.add_argument("model", help="name, name:N or name@alias of a local version")

    alias = command("alias", cmd_alias, "set, remove or list aliases (every move is audited)")
    alias_commands = alias.add_subparsers(dest="alias_command", required=True)
    alias_set = alias_commands.add_parser("set", parents=[common], help="point an alias")
    alias_set.add_argument("version", help="name:N or name@alias")
    alias_set.add_argument("alias")
    alias_set.add_argument("--reason")
    alias_remove = alias_commands.add_parser("remove", parents=[common], help="drop an alias")
    alias_remove.add_argument("model")
    alias_remove.add_argument("alias")
    alias_remove.add_argument("--reason")
    alias_list = alias_commands.add_parser("list", parents=[common], help="list aliases")
    alias_list.add_argument("model", nargs="?")

    history = command(
        "history", cmd_history, "the audit log: alias moves, promotions, catalog syncs"
    )
    history.add_argument("model", nargs="?")

    runs = command("runs", cmd_runs, "recorded runs, newest first")
    runs.add_argument("--kind")
    runs.add_argument("--status", choices=list(RUN_STATUSES))
    runs.add_argument("--limit", type=int, default=50)
