"""Hugging Face style model cards (README.md) for registered versions, from registry facts only.

The front matter follows the Hub's model card metadata (base_model, license, language, tags,
library_name, pipeline_tag, model-index); the numbers in `model-index` are the registry's
results, mean over seeds, so a card never claims more than was measured.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from transferlab.promotion import (
    Summary,
    allows_commercial_use,
    effective_licence,
    lineage_models,
    summarise,
)
from transferlab.registry import Registry, VersionRecord

HUB_SCHEME = "hf://"
METADATA_FILE = "transferlab.json"  # what a transferlab run writes next to its weights
_METRIC_NAMES = {
    "accuracy": "Accuracy",
    "macro_f1": "Macro F1",
    "micro_f1": "Micro F1",
    "weighted_f1": "Weighted F1",
    "mcc": "MCC",
    "roc_auc": "ROC AUC",
    "expected_calibration_error": "Expected calibration error",
    "ece": "Expected calibration error",
    "loss": "Loss",
}
# Scores on the data a model was trained on are no evaluation: the body lists them, the
# model-index (what the Hub shows as results) does not.
_TRAINING_SPLITS = frozenset({"train"})
_COLUMN_ORDER = {"precision": 0, "recall": 1, "f1": 2}
_COST_METRICS = frozenset(
    {
        "latency_ms_p50",
        "latency_ms_p95",
        "throughput_per_s",
        "peak_memory_mb",
        "load_seconds",
        "size_bytes",
        "model_size_mb",
        "adapter_size_mb",
    }
)
_TRAINING_KEYS = (
    "method",
    "base",
    "dataset",
    "n_train",
    "n_per_class",
    "epochs",
    "max_steps",
    "learning_rate",
    "batch_size",
    "max_length",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "weight_decay",
    "warmup_ratio",
    "early_stopping_patience",
    "seed",
    "device",
)


@dataclass
class CardFacts:
    """What the card says, gathered from the registry once."""

    version: VersionRecord
    model: dict
    lineage: list[VersionRecord]
    lineage_models: list[dict]
    run: dict | None
    results: dict[tuple, Summary]
    aliases: list[str]
    registry_path: str


def gather(registry: Registry, ref: str) -> CardFacts:
    version = registry.resolve(ref)
    lineage = registry.lineage(version.version_id)
    models = lineage_models(registry, version)
    run = registry.get_run(version.run_id) if version.run_id else None
    rows = registry.succeeded_results_of_version(version.version_id)
    aliases = [
        row["alias"]
        for row in registry.aliases(version.model_name)
        if row["version_id"] == version.version_id
    ]
    return CardFacts(
        version=version,
        model=models[0],
        lineage=lineage,
        lineage_models=models,
        run=run,
        results=summarise(rows, ("suite", "task", "dataset", "split", "metric")),
        aliases=aliases,
        registry_path=registry.display_location,
    )


# -- front matter -----------------------------------------------------------------------------


def hub_id(version: VersionRecord, model: dict) -> str | None:
    """The Hub id of a version's weights, when they are (or are copies of) a Hub model."""
    if version.uri and version.uri.startswith(HUB_SCHEME):
        return version.uri.removeprefix(HUB_SCHEME)
    same = (version.metadata or {}).get("same_weights_as")
    if isinstance(same, str) and same.startswith(HUB_SCHEME):
        return same.removeprefix(HUB_SCHEME)
    if model.get("source") == "hf" and model.get("source_ref"):
        return model["source_ref"]
    return None


def base_model(facts: CardFacts) -> str | None:
    """The root of the lineage: its Hub id when known, else its registry ref; None for a root."""
    if len(facts.lineage) < 2:
        return None
    root = facts.lineage[-1]
    root_model = next(m for m in facts.lineage_models if m["name"] == root.model_name)
    return hub_id(root, root_model) or root.ref


def is_peft_adapter(version: VersionRecord) -> bool:
    return version.kind == "adapter" and version.metadata.get("adapter_format", "peft") == "peft"


def labels(version: VersionRecord) -> list[str]:
    if version.label_names:
        return [str(label) for label in version.label_names]
    id2label = version.metadata.get("id2label")
    if isinstance(id2label, dict):
        return [str(id2label[k]) for k in sorted(id2label, key=int)]
    return []


def front_matter(facts: CardFacts) -> dict[str, Any]:
    version, model = facts.version, facts.model
    data: dict[str, Any] = {}
    base = base_model(facts)
    if base:
        data["base_model"] = base
    licensed = effective_licence(facts.lineage_models)
    if licensed:
        data["license"] = licensed["license"]
    languages = next((m["languages"] for m in facts.lineage_models if m.get("languages")), None)
    if languages:
        data["language"] = list(languages)
    data["tags"] = _tags(facts)
    data["library_name"] = (
        "peft" if is_peft_adapter(version) else (model.get("library") or "transformers")
    )
    data["pipeline_tag"] = model["task"]
    results = _model_index_results(facts)
    if results:
        data["model-index"] = [{"name": version.model_name, "results": results}]
    return data


def _tags(facts: CardFacts) -> list[str]:
    version = facts.version
    tags = ["transferlab", facts.model["task"], version.kind]
    method = version.metadata.get("method")
    if method:
        tags.append(str(method))
    if is_peft_adapter(version):
        tags.append("peft")
    tags += [str(tag) for tag in facts.model.get("tags") or []]
    return list(dict.fromkeys(tags))


def metric_kind(metric: str) -> str:
    """overall, per_class (`f1[label=billing]`), slice (`accuracy[text_length=0-70]`) or cost
    (latency, memory: they describe the measuring machine as much as the model)."""
    if "[label=" in metric:
        return "per_class"
    if "[" in metric:
        return "slice"
    return "cost" if metric in _COST_METRICS else "overall"


def _model_index_results(facts: CardFacts) -> list[dict]:
    """One entry per data set and split with the overall quality metrics. A benchmark suite's
    number wins over the fine-tuning run's own evaluation of the same data, split and metric."""
    task = facts.model["task"]
    grouped: dict[tuple[str, str], dict[str, dict]] = {}
    ordered = sorted(facts.results.items(), key=lambda item: (item[0][0] == "", item[0]))
    for (_suite, _task, dataset, split, metric), summary in ordered:
        if split in _TRAINING_SPLITS or metric_kind(metric) != "overall":
            continue
        grouped.setdefault((dataset, split), {}).setdefault(
            metric,
            {
                "type": metric,
                "value": round(summary.mean, 4),
                "name": _METRIC_NAMES.get(metric, metric.replace("_", " ").capitalize()),
                "verified": False,
            },
        )
    return [
        {
            "task": {"type": task, "name": task.replace("-", " ").title()},
            "dataset": {"name": dataset, "type": dataset, "split": split},
            "metrics": [metrics[name] for name in sorted(metrics)],
        }
        for (dataset, split), metrics in sorted(grouped.items())
    ]


# -- body -------------------------------------------------------------------------------------


def render_card(registry: Registry, ref: str) -> str:
    """The complete README.md text of a version's model card."""
    facts = gather(registry, ref)
    matter = yaml.safe_dump(front_matter(facts), sort_keys=False, allow_unicode=True, width=100)
    sections = [
        _summary_section(facts),
        _lineage_section(facts),
        _training_section(facts),
        _evaluation_section(facts),
        _labels_section(facts),
        _use_section(facts),
        _loading_section(facts),
    ]
    return f"---\n{matter}---\n\n" + "\n\n".join(sections) + "\n"


def _summary_section(facts: CardFacts) -> str:
    version, model = facts.version, facts.model
    licensed = effective_licence(facts.lineage_models)
    if licensed:
        inherited = "" if licensed["name"] == model["name"] else f" (from {licensed['name']})"
        commercial = {True: "allows", False: "does not allow", None: "unknown whether it allows"}
        licence = (
            f"{licensed['license']}{inherited}; "
            f"{commercial[allows_commercial_use(licensed)]} commercial use"
        )
    else:
        licence = "not recorded"
    description = model.get("description") or (
        f"A {version.kind} version of {model['name']} for {model['task']}."
    )
    rows = [
        ("Registry version", f"`{version.ref}` ({version.kind})"),
        ("Task", model["task"]),
        ("Base model", f"`{base_model(facts)}`" if base_model(facts) else "none (a root model)"),
        ("Licence", licence),
        ("Aliases", ", ".join(facts.aliases) or "none"),
        ("Weights", f"`{version.uri}`" if version.uri else "not recorded"),
        ("Registered", str(version.created_at or "unknown")),
    ]
    table = "\n".join(f"| {key} | {value} |" for key, value in rows)
    return f"# {version.ref}\n\n{description}\n\n| | |\n|---|---|\n{table}"


def _lineage_section(facts: CardFacts) -> str:
    lines = ["## Lineage", ""]
    for number, step in enumerate(facts.lineage, start=1):
        run = f", made by run `{step.run_id}`" if step.run_id else ""
        lines.append(f"{number}. `{step.ref}`: {step.kind}, `{step.uri or 'no weights'}`{run}")
    if len(facts.lineage) == 1:
        lines.append("\nThis version derives from no other registered version.")
    return "\n".join(lines)


def _training_section(facts: CardFacts) -> str:
    run = facts.run
    if run is None:
        return (
            "## Training\n\nNo run that made this version is recorded: it was imported, not "
            "trained here."
        )
    params = run.get("parameters") or {}
    rows = [(key, params[key]) for key in _TRAINING_KEYS if params.get(key) is not None]
    lines = [
        "## Training",
        "",
        f"Made by run `{run['run_id']}` ({run['kind']}, {run['status']}, started "
        f"{run['started_at']}, finished {run.get('finished_at') or '-'}).",
    ]
    if rows:
        lines += ["", "| parameter | value |", "|---|---|"]
        lines += [f"| {key} | {_plain(value)} |" for key, value in rows]
    splits = (params.get("data") or {}).get("splits") or {}
    if splits:
        order = {"train": 0, "validation": 1, "test": 2}
        split_names = sorted(splits, key=lambda name: (order.get(name, 3), name))
        sizes = ", ".join(f"{name} {splits[name].get('examples')}" for name in split_names)
        lines += ["", f"Examples per split: {sizes}."]
    packages = run.get("package_versions") or {}
    if packages:
        names = ("python", "torch", "transformers", "peft", "transferlab")
        listed = ", ".join(f"{n} {packages[n]}" for n in names if n in packages)
        lines += ["", f"Software: {listed}."]
    return "\n".join(lines)


def _evaluation_section(facts: CardFacts) -> str:
    if not facts.results:
        return (
            "## Evaluation\n\nNo results are recorded for this version. Benchmark it with "
            "`transferlab run benchmark` and write the card again."
        )
    by_kind: dict[str, dict[tuple, Summary]] = {}
    for key, summary in sorted(facts.results.items()):
        by_kind.setdefault(metric_kind(key[4]), {})[key] = summary
    lines = [
        "## Evaluation",
        "",
        "From the registry: mean over seeds, ± the standard deviation over seeds. Rows without "
        "a suite are the fine-tuning run's own evaluation.",
    ]
    if "overall" in by_kind:
        lines += [
            "",
            "| suite | task | dataset | split | metric | value | ± | seeds |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for (suite, task, dataset, split, metric), s in by_kind["overall"].items():
            spread = f"{s.std:.4f}" if s.std is not None else "-"
            lines.append(
                f"| {suite or '-'} | {task or '-'} | {dataset} | {split} | {metric} | "
                f"{s.mean:.4f} | {spread} | {s.n} |"
            )
    order = {name: i for i, name in enumerate(labels(facts.version))}
    for kind, title, row_name in (
        ("per_class", "Per class", "label"),
        ("slice", "By slice", "slice"),
    ):
        for where, table in _pivots(by_kind.get(kind, {})).items():
            rows = sorted(table, key=lambda row: (order.get(row, len(order)), row))
            present = {c for row in table.values() for c in row}
            columns = sorted(present, key=lambda c: (_COLUMN_ORDER.get(c, len(_COLUMN_ORDER)), c))
            lines += ["", f"### {title}: {where}", ""]
            lines += [f"| {row_name} | {' | '.join(columns)} |", "|---" * (len(columns) + 1) + "|"]
            for row in rows:
                cells = [f"{table[row][c]:.4f}" if c in table[row] else "-" for c in columns]
                lines.append(f"| {row} | {' | '.join(cells)} |")
    if "cost" in by_kind:
        lines += ["", "### Cost on the measuring machine", "", "| suite | task | metric | value |"]
        lines.append("|---|---|---|---|")
        for (suite, task, _dataset, _split, metric), s in by_kind["cost"].items():
            lines.append(f"| {suite or '-'} | {task or '-'} | {metric} | {s.mean:.4g} |")
    return "\n".join(lines)


def _pivots(results: dict[tuple, Summary]) -> dict[str, dict[str, dict[str, float]]]:
    """`measure[label=x]` / `measure[slice]` results as one table per suite/task/split:
    {where: {row (label or slice): {measure: mean}}}."""
    tables: dict[str, dict[str, dict[str, float]]] = {}
    for (suite, task, _dataset, split, metric), summary in results.items():
        measure, _, rest = metric.partition("[")
        row = rest.rstrip("]").removeprefix("label=")
        where = "/".join(part for part in (suite, task, split) if part)
        tables.setdefault(where, {}).setdefault(row, {})[measure] = summary.mean
    return tables


def _labels_section(facts: CardFacts) -> str:
    names = labels(facts.version)
    if not names:
        return "## Labels\n\nNo label names are recorded for this version."
    rows = "\n".join(f"| {i} | {name} |" for i, name in enumerate(names))
    return f"## Labels\n\n| id | label |\n|---|---|\n{rows}"


def _use_section(facts: CardFacts) -> str:
    datasets = sorted({key[2] for key in facts.results})
    measured = (
        f"It was measured on {', '.join(datasets)} only" if datasets else "It has not been measured"
    )
    languages = next((m["languages"] for m in facts.lineage_models if m.get("languages")), None)
    return "\n".join(
        [
            "## Intended use and limitations",
            "",
            f"Intended for {facts.model['task']} of texts like those it was trained on, with the "
            f"labels listed above. {measured}: check it on your own data before relying on it, "
            "and expect lower quality on other domains, text lengths or languages"
            + (f" than {', '.join(languages)}" if languages else "")
            + ".",
            "",
            "It inherits the biases and limitations of its base model and training data, and it "
            "was not evaluated for fairness across groups of people. Check the licence above "
            "(and its base model's) before commercial use.",
        ]
    )


def _loading_section(facts: CardFacts) -> str:
    version = facts.version
    ref = version.ref
    lines = [
        "## How to load",
        "",
        "With transferlab (the registry resolves the base, the adapter and the labels):",
        "",
        "```bash",
        f'transferlab predict {ref} "my order never arrived" --registry {facts.registry_path}',
        "```",
        "",
        "```python",
        "from transferlab import Registry",
        "from transferlab.predict import load_version_model",
        "",
        f'loaded = load_version_model(Registry("{facts.registry_path}"), "{ref}")',
        'print(loaded.predict(["my order never arrived"]))',
        "```",
    ]
    names = labels(version)
    label_args = ""
    if names:
        id2label = dict(enumerate(names))
        label2id = {name: i for i, name in enumerate(names)}
        label_args = (
            f",\n    num_labels={len(names)},\n    id2label={id2label!r},"
            f"\n    label2id={label2id!r},"
        )
    if is_peft_adapter(version):
        base = _adapter_base(facts)
        lines += [
            "",
            "With transformers and peft:",
            "",
            "```python",
            "from peft import PeftModel",
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
            "",
            f'base = AutoModelForSequenceClassification.from_pretrained(\n    "{base}"{label_args}'
            "\n)",
            f'model = PeftModel.from_pretrained(base, "{version.uri}")',
            f'tokenizer = AutoTokenizer.from_pretrained("{version.uri}")',
            "```",
        ]
    elif version.kind == "adapter":
        lines += [
            "",
            "This adapter stores only a trained classification head (linear probe): load it "
            "through transferlab as above.",
        ]
    elif version.uri:
        location = version.uri.removeprefix(HUB_SCHEME)
        lines += [
            "",
            "With transformers:",
            "",
            "```python",
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
            "",
            f'model = AutoModelForSequenceClassification.from_pretrained("{location}")',
            f'tokenizer = AutoTokenizer.from_pretrained("{location}")',
            "```",
        ]
    return "\n".join(lines)


def _adapter_base(facts: CardFacts) -> str:
    """Where the adapter's base weights are: the parent version's location."""
    uri = facts.version.metadata.get("base_uri")
    if not uri and len(facts.lineage) > 1:
        uri = facts.lineage[1].uri
    return str(uri or base_model(facts) or "BASE_MODEL").removeprefix(HUB_SCHEME)


def _plain(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(value).replace("|", "\\|")


# -- writing ----------------------------------------------------------------------------------


def default_card_path(version: VersionRecord) -> Path:
    """README.md in the version's folder when transferlab wrote that folder, else
    ./<name>-card.md: a folder transferlab did not write (an imported model, a package's
    install) keeps its own README."""
    if version.uri and not version.uri.startswith(HUB_SCHEME) and "://" not in version.uri:
        folder = Path(version.uri).expanduser()
        if (folder / METADATA_FILE).is_file():
            return folder / "README.md"
    return Path.cwd() / f"{version.model_name.replace('/', '--')}-card.md"


def write_card(registry: Registry, ref: str, output: str | os.PathLike[str] | None = None) -> Path:
    """Render the card and write it atomically (a reader never sees half a card)."""
    text = render_card(registry, ref)
    target = Path(output).expanduser() if output else default_card_path(registry.resolve(ref))
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".card-", suffix=".md")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a card is for everyone
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target.resolve()
