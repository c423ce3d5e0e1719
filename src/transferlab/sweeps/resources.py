"""What a sweep file asks of where its runs execute: `executor:` (a name, or a mapping with
the name and the executor's own settings) and `resources:` (per run).

```yaml
executor: {name: ray, address: "127.0.0.1:6380"}   # or: executor: ray
resources: {cpus: 2, gpus: 0, memory_gb: 4}        # each run's share
```

The executor decides what it does with `resources` (executors/base.py ExecutorSettings): `ray`
reserves them per task and sets the run's OMP/MKL threads to `cpus`; `process` divides this
machine's cores between its --workers and gives each worker `gpus` GPUs of its own
(transferlab.sweeps.gpus).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

RESOURCE_KEYS = ("cpus", "gpus", "memory_gb")


@dataclass(frozen=True)
class RunResources:
    """One run's share of a machine; None: the executor's default."""

    cpus: float | None = None
    gpus: float = 0
    memory_gb: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class ChoiceError(ValueError):
    """A value the sweep file cannot take: `key` (under the file's top-level key), what was
    wrong, what was expected."""

    def __init__(self, key: str, problem: str, expected: str):
        super().__init__(problem)
        self.key, self.problem, self.expected = key, problem, expected


def parse_resources(raw: Any) -> RunResources:
    if not isinstance(raw, dict) or not raw:
        raise ChoiceError(
            "resources", f"got {_kind(raw)}", "a mapping like {cpus: 1, gpus: 0, memory_gb: 2}"
        )
    for key in raw:
        if key not in RESOURCE_KEYS:
            raise ChoiceError(
                f"resources.{key}", f"unknown key {key!r}", f"one of {', '.join(RESOURCE_KEYS)}"
            )
    values: dict[str, float] = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ChoiceError(f"resources.{key}", f"got {_kind(value)}", "a number of 0 or more")
        values[key] = value
    if values.get("cpus") == 0:
        raise ChoiceError("resources.cpus", "got 0", "at least a fraction of a CPU, e.g. 1")
    return RunResources(**values)


def parse_executor(raw: Any) -> tuple[str, dict[str, Any]]:
    """`executor:` as (name, the executor's settings): a name, or {name: ..., setting: ...}."""
    if isinstance(raw, str) and raw:
        return raw, {}
    if isinstance(raw, dict):
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise ChoiceError(
                "executor.name", f"got {_kind(name)}", "the executor's name, e.g. name: ray"
            )
        return name, {str(k): v for k, v in raw.items() if k != "name"}
    raise ChoiceError(
        "executor", f"got {_kind(raw)}", "an executor name, or {name: NAME, its settings}"
    )


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping" if value else "an empty mapping"
    return f"{type(value).__name__} {value!r}"
