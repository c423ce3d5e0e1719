"""Registry backends: where and how the registry is stored, chosen by its location.

Modelled on MLflow's tracking stores: a location is a plain path or a URI, and its scheme
picks the backend. A plain path and `duckdb:///abs/path` open the built-in DuckDB backend
(registry/duckdb_backend.py); `postgresql://user@host:port/db` (or `postgres://`) the built-in
PostgreSQL backend (registry/postgres_backend.py, which needs psycopg: the `postgres` extra).
Other packages add schemes through the entry-point group `transferlab.registry_backends`
(`labdb = my_package.lab:LabBackend`), read on a look-up of a scheme that is not built in. A
scheme such as `postgresql+psycopg` falls back to the backend of `postgresql`.

A backend owns the connection to the store: opening it, bringing its schema up to date, the
transaction, and what its connections may run. The SQL of the registry's operations lives in
the Registry methods (registry/*.py), written once for every backend; the few fragments
engines write differently come from the backend's `dialect` (registry/dialect.py). No
connection leaves the registry package.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from transferlab.errors import RegistryError

if TYPE_CHECKING:
    from transferlab.registry.dialect import Dialect

ENTRY_POINT_GROUP = "transferlab.registry_backends"
REGISTRY_VARIABLE = "TRANSFERLAB_REGISTRY"
DEFAULT_REGISTRY_NAME = "registry.duckdb"
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<rest>.*)$", re.DOTALL)
# Schemes handled in this package (each backend is imported on first use).
_BUILT_IN = {
    "duckdb": "transferlab.registry.duckdb_backend:DuckDBBackend",
    "postgresql": "transferlab.registry.postgres_backend:PostgresBackend",
    "postgres": "transferlab.registry.postgres_backend:PostgresBackend",
}


class RegistryBackend(ABC):
    """How one registry is stored. Subclass it (or DuckDBBackend) for another store and
    declare the class under the entry-point group `transferlab.registry_backends`."""

    #: the URI scheme(s) this backend is registered under
    scheme: ClassVar[str] = ""

    #: the string that opens this registry again (passed to notebooks and workers)
    location: str
    #: the registry's file, for a backend that keeps it in one; None for a server
    path: Path | None = None
    #: the SQL fragments this backend's engine writes its own way (registry/dialect.py)
    dialect: Dialect

    @classmethod
    @abstractmethod
    def from_location(cls, location: str, *, lock_timeout_s: float) -> RegistryBackend:
        """The backend for `location` (a plain path or a URI of this backend's scheme).
        Nothing is created or opened yet."""

    @abstractmethod
    def exists(self) -> bool:
        """Whether the registry has been created."""

    @abstractmethod
    def prepare(self, pending: Callable[[Any], Any], settle: Callable[[Any, Any], None]) -> None:
        """Before the first operation: refuse a location that holds no registry, create it or
        bring its schema up to date. `pending(con)` says what is left to do on an up-to-date
        registry (e.g. runs whose process is gone; falsy when nothing), `settle(con, work)`
        does it on a writable connection."""

    @abstractmethod
    def connection(self, *, read_only: bool = False) -> AbstractContextManager[Any]:
        """A connection held until the block ends; nested blocks in one thread share it."""

    @abstractmethod
    def transaction(self, con: Any) -> AbstractContextManager[Any]:
        """All or nothing on `con`: commit when the block ends, roll back on any exception."""

    @abstractmethod
    def check_read_only(self, sql: str) -> None:
        """Refuse (RegistryError) a statement that would change the registry."""

    def writable(self) -> bool:
        """Whether this process may write the registry."""
        return True

    @property
    def display_location(self) -> str:
        """The location as messages show it (a server backend hides any password)."""
        return str(self.path) if self.path is not None else self.location

    def default_models_dir(self) -> Path | None:
        """Where model weights go unless --models-dir / TRANSFERLAB_MODELS say otherwise: a
        `models` folder beside the registry's file. None for a registry with no file (a
        server): its weights need one of those two settings."""
        return self.path.parent / "models" if self.path is not None else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"


def chosen_location(location: str | os.PathLike[str] | None = None) -> str:
    """An explicit location wins, then TRANSFERLAB_REGISTRY, then ./registry.duckdb."""
    chosen = location or os.environ.get(REGISTRY_VARIABLE) or DEFAULT_REGISTRY_NAME
    return os.fspath(chosen)


def location_scheme(location: str) -> str | None:
    """The URI scheme of a location (lower case), or None for a plain path."""
    match = _SCHEME.match(location)
    return match.group("scheme").lower() if match else None


def _declared() -> dict[str, Any]:
    """Entry points of the group, by scheme (lower case)."""
    return {point.name.lower(): point for point in entry_points(group=ENTRY_POINT_GROUP)}


def known_schemes() -> list[str]:
    """Every scheme a location may use here: built-in first, then declared ones."""
    return [*_BUILT_IN, *sorted(set(_declared()) - set(_BUILT_IN))]


def _load(target: str) -> type[RegistryBackend]:
    from importlib import import_module

    module, _, name = target.partition(":")
    return getattr(import_module(module), name)


def backend_class(scheme: str | None, location: str = "") -> type[RegistryBackend]:
    """The backend class for a scheme (None: a plain path, the DuckDB backend)."""
    if scheme is None:
        return _load(_BUILT_IN["duckdb"])
    for candidate in dict.fromkeys([scheme, scheme.split("+", 1)[0]]):
        if candidate in _BUILT_IN:
            return _load(_BUILT_IN[candidate])
    declared = _declared()
    for candidate in dict.fromkeys([scheme, scheme.split("+", 1)[0]]):
        point = declared.get(candidate)
        if point is None:
            continue
        try:
            loaded = point.load()
        except Exception as error:  # a broken plug-in: say which and why
            raise RegistryError(
                f"The registry backend for {candidate}:// (entry point "
                f"'{point.name} = {point.value}') could not be loaded: "
                f"{type(error).__name__}: {error}",
                "Fix or reinstall the package that declares it.",
            ) from error
        if not (isinstance(loaded, type) and issubclass(loaded, RegistryBackend)):
            raise RegistryError(
                f"The entry point '{point.name} = {point.value}' of {ENTRY_POINT_GROUP} is not "
                "a RegistryBackend class.",
                "Point it at a subclass of transferlab.registry.backends.RegistryBackend.",
            )
        return loaded
    raise RegistryError(
        f"No registry backend handles {scheme}:// (in {location!r}); known schemes: "
        f"{', '.join(f'{s}://' for s in known_schemes())}, or a plain file path.",
        "Give a file path or duckdb:///ABSOLUTE/PATH/registry.duckdb to --registry / "
        f"{REGISTRY_VARIABLE}, or install the package that provides the {scheme} backend "
        f"(entry-point group {ENTRY_POINT_GROUP}). Nothing was created.",
    )


def open_backend(
    location: str | os.PathLike[str] | None = None, *, lock_timeout_s: float
) -> RegistryBackend:
    """The backend for a registry location; it creates and opens nothing yet."""
    chosen = chosen_location(location)
    scheme = location_scheme(chosen)
    return backend_class(scheme, chosen).from_location(chosen, lock_timeout_s=lock_timeout_s)


MODELS_VARIABLE = "TRANSFERLAB_MODELS"


def resolve_models_dir(
    explicit: str | os.PathLike[str] | None, backend: RegistryBackend
) -> Path | None:
    """Where model weights are written: an explicit folder (--models-dir) wins, then
    TRANSFERLAB_MODELS, then the backend's default (a `models` folder beside the registry
    file; None for a registry on a server)."""
    chosen = explicit or os.environ.get(MODELS_VARIABLE, "").strip()
    if chosen:
        return Path(chosen).expanduser().resolve()
    return backend.default_models_dir()
