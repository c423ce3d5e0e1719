"""What the picker shows, computed without any widget: searches, model details, run parameters.

The widget layer (picker.py) only turns form values into `FilterValues` and renders what these
functions return, so the logic is tested as plain code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from transferlab.errors import TransferlabError
from transferlab.finetuning.methods import DEFAULT_METHOD
from transferlab.registry import Registry
from transferlab.search import (
    SearchFilters,
    explain_empty,
    local_path,
    parse_parameter_count,
    search_models,
)

ANY = "any"


@dataclass
class FilterValues:
    """The picker's form as plain values; `ANY` (or empty) means no filter."""

    task: str = ANY
    license: str = ANY
    max_params: str = ""
    source: str = ANY
    runnable_here: bool = False
    query: str | None = None  # None: no semantic search; text: rank by similarity
    limit: int = 50

    def to_search_filters(self) -> SearchFilters:
        return SearchFilters(
            task=None if self.task in (ANY, "", None) else self.task,
            license=self.license or ANY,
            max_params=parse_parameter_count(self.max_params.strip() or None),
            source=None if self.source in (ANY, "", None) else self.source,
            runnable_here=self.runnable_here,
            query=self.query,
            limit=self.limit,
        )


@dataclass
class SearchOutcome:
    """The rows to show, or a message saying why there are none (or what was wrong)."""

    rows: list[dict] = field(default_factory=list)
    message: str | None = None
    is_error: bool = False

    @property
    def names(self) -> list[str]:
        return [row["name"] for row in self.rows]


def registry_tasks(registry: Registry) -> list[str]:
    return registry.model_tasks()


def find_models(registry: Registry, values: FilterValues) -> SearchOutcome:
    """Search the registry; bad input and empty results become messages, never exceptions."""
    try:
        filters = values.to_search_filters()
        rows = search_models(registry, filters)
    except TransferlabError as error:
        return SearchOutcome(message=str(error), is_error=True)
    if not rows:
        return SearchOutcome(message=explain_empty(registry, filters))
    runnable = runnable_models(registry, [row["name"] for row in rows])
    for row in rows:
        row["runnable"] = row["name"] in runnable
    return SearchOutcome(rows=rows)


def runnable_models(registry: Registry, names: list[str]) -> set[str]:
    """Which of `names` have a version whose weights are on this machine."""
    if not names:
        return set()
    rows = registry.version_uris(names)
    return {row["model_name"] for row in rows if local_path(row["uri"])}


@dataclass
class ModelDetails:
    """Everything the detail panel shows about one model."""

    model: dict
    versions: list[dict]  # each with `lineage` (version ids, newest first) and `local`
    aliases: list[dict]
    profiles: list[dict]
    results: list[dict]

    @property
    def version_ids(self) -> list[str]:
        return [v["version_id"] for v in self.versions]

    def default_version(self) -> str | None:
        """The newest version with local weights, else the newest version."""
        local = [v["version_id"] for v in self.versions if v["local"]]
        if local:
            return local[-1]
        return self.versions[-1]["version_id"] if self.versions else None


def model_details(registry: Registry, name: str) -> ModelDetails:
    with registry.session(read_only=True):  # one open file for the handful of queries below
        model = registry.get_model(name)
        versions = []
        for record in registry.versions(name):
            row = asdict(record)
            row["local"] = local_path(record.uri) is not None
            row["lineage"] = [v.version_id for v in registry.lineage(record.version_id)]
            versions.append(row)
        ids = [v["version_id"] for v in versions]
        profiles = [p for p in registry.profiles() if p["version_id"] in ids]
        results = registry.result_means_of_model(name)
        aliases = registry.aliases(name)
    return ModelDetails(model, versions, aliases, profiles, results)


def finetune_parameters(
    registry: Registry,
    version_ref: str,
    extra: dict[str, Any] | None = None,
    method: str = DEFAULT_METHOD,
) -> dict[str, Any]:
    """Parameters of the finetune template: the base version, the method, `extra` (data,
    max_steps, name, ...) and the settings the run takes from the catalog, resolved once the
    way the run resolves them (`parameters.recommended_parameters`), so what the picker shows is
    what the run uses. A base whose weights are not on this machine (a hub reference) is not
    resolved here: its settings are left to the run, which resolves them the same way.
    """
    from transferlab.models import sources
    from transferlab.parameters import recommended_parameters
    from transferlab.runner import check_parameters, template_path

    version = registry.resolve(version_ref)
    methods = (registry.get_model(version.model_name).get("finetune") or {}).get("methods")
    if methods and method not in methods and method != "auto":  # auto resolves to one later
        raise TransferlabError(
            f"{version.model_name} does not recommend method {method!r}.",
            f"Its catalog entry lists: {', '.join(methods)}.",
        )
    request: dict[str, Any] = {"base": version.version_id, "method": method, **(extra or {})}
    check_parameters(template_path("finetune"), request)
    if not sources.source_from_uri(version.uri, version.ref).is_local:
        return request
    return recommended_parameters(request, registry)
