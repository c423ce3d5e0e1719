"""Registry backends chosen by the registry's location, backends added through an entry-point
group, where model weights are written (--models-dir, TRANSFERLAB_MODELS), and the read-only
Registry.query (on a DuckDB file and a PostgreSQL database). The plug-in tests declare a DuckDB
subclass and stay DuckDB-only; PostgreSQL's own behaviour is in test_registry_postgres.py."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import install_plugin_package, is_served
from transferlab import ModelRecord, Registry
from transferlab.data import sample_data_path
from transferlab.errors import RegistryError
from transferlab.finetune import FinetuneConfig, finetune
from transferlab.registry.backends import (
    ENTRY_POINT_GROUP,
    MODELS_VARIABLE,
    RegistryBackend,
    known_schemes,
)
from transferlab.registry.duckdb_backend import DuckDBBackend
from transferlab.registry.postgres_backend import PostgresBackend

SERVED = True  # the registry suite: also through the service (conftest.py)


def _model(name: str = "m") -> ModelRecord:
    return ModelRecord(name=name, source="hf", source_ref=f"org/{name}", task="text-embedding")


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- the location chooses the backend -----------------------------------------------------------


def test_a_plain_path_opens_the_duckdb_backend(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    registry = Registry("lab/registry.duckdb")
    assert type(registry.backend) is DuckDBBackend
    assert registry.path == tmp_path / "lab" / "registry.duckdb"
    assert registry.location == str(registry.path)
    assert repr(registry) == f"Registry({str(registry.path)!r})"
    assert not (tmp_path / "lab").exists()  # nothing is created before the first operation
    registry.upsert_models([_model()])
    assert registry.path.is_file() and registry.model_names() == ["m"]


def test_a_duckdb_uri_opens_the_same_file_as_its_path(tmp_path, monkeypatch):
    path = tmp_path / "registry.duckdb"
    Registry(path).upsert_models([_model("a")])
    for location in (f"duckdb://{path}", f"DuckDB://{path}"):
        registry = Registry(location)
        assert type(registry.backend) is DuckDBBackend
        assert registry.path == path and registry.location == str(path)
        assert registry.model_names() == ["a"]
    monkeypatch.setenv("TRANSFERLAB_REGISTRY", f"duckdb://{path}")
    assert Registry().path == path


def test_a_duckdb_uri_without_an_absolute_path_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RegistryError) as caught:
        Registry("duckdb://registry.duckdb")
    assert "duckdb:///ABSOLUTE/PATH" in caught.value.fix
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "location", ["mysql://lab@db.example/registry", "mssql+pyodbc://db/registry"]
)
def test_an_unknown_scheme_is_refused_naming_the_known_ones_and_nothing_is_created(
    tmp_path, monkeypatch, location
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RegistryError) as caught:
        Registry(location)
    error = caught.value
    scheme = location.split("://")[0]
    assert f"{scheme}://" in error.problem and "duckdb://" in error.problem
    assert "postgresql://" in error.problem
    assert "duckdb:///" in error.fix and ENTRY_POINT_GROUP in error.fix
    assert "Nothing was created" in error.fix
    assert list(tmp_path.iterdir()) == []


# The PostgreSQL locations below are parsed (by psycopg's libpq) but never reached.
needs_psycopg = pytest.mark.skipif(
    importlib.util.find_spec("psycopg") is None, reason="psycopg is not installed"
)


@needs_psycopg
@pytest.mark.parametrize(
    "location",
    [
        "postgresql://lab@db.example:5433/registry",
        "postgres://lab@db.example:5433/registry",
        "postgresql+psycopg://lab@db.example:5433/registry",
        "PostgreSQL://lab@db.example:5433/registry",
    ],
)
def test_a_postgresql_url_opens_the_postgres_backend_without_connecting(
    tmp_path, monkeypatch, location
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(MODELS_VARIABLE, raising=False)
    registry = Registry(location)  # db.example is never contacted before the first operation
    assert type(registry.backend) is PostgresBackend
    assert registry.path is None and registry.location == location
    assert registry.display_location == location
    assert registry.backend.place.dbname == "registry"
    assert registry.backend.place.server == "db.example:5433"
    assert list(tmp_path.iterdir()) == []


def test_a_postgresql_location_without_psycopg_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg raises ImportError
    with pytest.raises(RegistryError) as caught:
        Registry("postgresql://lab:secret@db.example/registry")
    assert "needs the PostgreSQL driver psycopg" in caught.value.problem
    assert "secret" not in caught.value.problem
    assert "pip install -e '.[postgres]'" in caught.value.fix


@needs_psycopg
def test_a_password_in_a_postgresql_url_is_never_shown(monkeypatch):
    location = "postgresql://lab:s3cret@db.example/registry?password=other&sslmode=require"
    registry = Registry(location)
    assert registry.location == location  # how notebooks and workers open it again
    assert "s3cret" not in registry.display_location and "other" not in repr(registry)
    assert registry.display_location == (
        "postgresql://lab:***@db.example/registry?password=***&sslmode=require"
    )


@needs_psycopg
def test_a_postgresql_url_without_a_database_is_refused():
    with pytest.raises(RegistryError) as caught:
        Registry("postgresql://lab@db.example:5432")
    assert "names no database" in caught.value.problem
    assert "postgresql://USER@HOST:PORT/DATABASE" in caught.value.fix


@needs_psycopg
def test_a_registry_on_a_server_needs_a_models_folder(monkeypatch, tmp_path):
    """No folder lies beside a server registry: weights go where --models-dir or
    TRANSFERLAB_MODELS say, and nowhere by default (not into the current folder)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(MODELS_VARIABLE, raising=False)
    registry = Registry("postgresql://lab@db.example/registry")
    with pytest.raises(RegistryError) as caught:
        _ = registry.models_dir
    assert "kept on a server" in caught.value.problem
    assert "--models-dir" in caught.value.fix and MODELS_VARIABLE in caught.value.fix
    explicit = Registry("postgresql://lab@db.example/registry", models_dir=tmp_path / "w")
    assert explicit.models_dir == tmp_path / "w"
    monkeypatch.setenv(MODELS_VARIABLE, str(tmp_path / "shared"))
    assert Registry("postgresql://lab@db.example/registry").models_dir == tmp_path / "shared"
    assert list(tmp_path.iterdir()) == []


def test_the_cli_refuses_an_unknown_scheme_with_the_fix(tmp_path, monkeypatch, run_cli):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("search", "--registry", "mysql://db/registry")
    assert code == 2
    assert "mysql://" in err and "duckdb://" in err and "fix:" in err
    assert list(tmp_path.iterdir()) == []


# -- a backend from another package, through the entry-point group ------------------------------
# DuckDB-only: the plug-in is a subclass of the DuckDB backend, on a file.

PLUGIN_SOURCE = '''
from transferlab.registry.duckdb_backend import DuckDBBackend
from transferlab.registry.postgres_backend import PostgresBackend


OPENED = []


class LabBackend(DuckDBBackend):
    """A DuckDB file under another scheme that counts the connections it opens."""

    scheme = "labdb"

    def connection(self, *, read_only=False):
        OPENED.append(read_only)
        return super().connection(read_only=read_only)
'''
ENTRY_POINTS = f"""
[{ENTRY_POINT_GROUP}]
labdb = tl_extra_backend:LabBackend
brokendb = tl_extra_backend:NoSuchBackend
notabackend = tl_extra_backend:OPENED
"""


@pytest.fixture
def plugin_backend(tmp_path: Path, monkeypatch):
    """An 'installed' package declaring registry backends, on sys.path."""
    folder = tmp_path / "site"
    install_plugin_package(folder, "tl_extra_backend", PLUGIN_SOURCE, ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    import sys

    sys.modules.pop("tl_extra_backend", None)


def test_a_backend_declared_by_another_package_is_used_through_registry(tmp_path, plugin_backend):
    import tl_extra_backend

    path = tmp_path / "lab" / "registry.duckdb"
    registry = Registry(f"labdb://{path}")
    assert type(registry.backend) is tl_extra_backend.LabBackend
    assert isinstance(registry.backend, RegistryBackend)
    assert registry.location == f"labdb://{path}" and registry.path == path
    assert registry.models_dir == path.parent / "models"
    assert "labdb" in known_schemes()

    registry.upsert_models([_model("a")])
    version = registry.add_version("a", "base", "hf://org/a")
    registry.set_alias(version.ref, "production", reason="first")
    again = Registry(registry.location)  # how notebooks and workers open it again
    assert type(again.backend) is tl_extra_backend.LabBackend
    assert again.resolve("a@production").version_id == "a:1"
    assert again.query("SELECT count(*) AS n FROM audit_log")[0]["n"] == 1
    assert tl_extra_backend.OPENED and False in tl_extra_backend.OPENED
    assert Registry(path).model_names() == ["a"]  # the same DuckDB file underneath


def test_an_unknown_scheme_lists_the_declared_backends(tmp_path, plugin_backend):
    with pytest.raises(RegistryError) as caught:
        Registry("mongodb://db/registry")
    assert "labdb://" in caught.value.problem and "duckdb://" in caught.value.problem


def test_a_broken_backend_entry_point_is_named_with_its_error(tmp_path, plugin_backend):
    with pytest.raises(RegistryError) as caught:
        Registry(f"brokendb://{tmp_path}/registry.duckdb")
    assert "brokendb = tl_extra_backend:NoSuchBackend" in caught.value.problem
    with pytest.raises(RegistryError) as caught:
        Registry(f"notabackend://{tmp_path}/registry.duckdb")
    assert "not a RegistryBackend" in caught.value.problem
    assert [p.name for p in tmp_path.iterdir()] == ["site"]


def test_the_cli_imports_into_a_declared_backend(tmp_path, plugin_backend, run_cli, tiny_bert_dir):
    location = f"labdb://{tmp_path}/registry.duckdb"
    code, out, err = run_cli("import", "local", tiny_bert_dir, "--name", "tiny-bert",
                             "--registry", location, "--json", "--no-profile")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["version_id"] == "tiny-bert:1"
    assert Registry(tmp_path / "registry.duckdb").model_names() == ["tiny-bert"]


# -- where model weights are written ----------------------------------------------------------


def _quick(base: str, **overrides) -> FinetuneConfig:
    settings = dict(
        base=base,
        train=sample_data_path("train"),
        test=sample_data_path("test"),
        n_per_class=4,
        validation_fraction=0.1,
        max_length=32,
        batch_size=8,
        max_steps=2,
        method="lora",
    )
    return FinetuneConfig(**{**settings, **overrides})


def _import_tiny(run_cli, registry_path: Path, tiny_bert_dir: Path, *options: str) -> str:
    code, out, err = run_cli("import", "local", tiny_bert_dir, "--name", "tiny-bert",
                             "--registry", registry_path, "--json", "--no-profile",
                             *options)  # fmt: skip
    assert code == 0, err
    return json.loads(out)["version_id"]


@pytest.mark.training
def test_models_go_beside_the_registry_by_default(tmp_path, monkeypatch, run_cli, tiny_bert_dir):
    monkeypatch.delenv(MODELS_VARIABLE, raising=False)
    registry_path = tmp_path / "reg" / "registry.duckdb"
    base = _import_tiny(run_cli, registry_path, tiny_bert_dir)
    registry = Registry(registry_path)
    assert registry.models_dir == tmp_path / "reg" / "models"
    result = finetune(_quick(base, name="tiny-default"), registry, progress=False)
    assert result.output_dir.parent == tmp_path / "reg" / "models" / "tiny-default"


@pytest.mark.training
def test_transferlab_models_puts_the_weights_where_asked(
    tmp_path, monkeypatch, run_cli, tiny_bert_dir
):
    weights = tmp_path / "weights"
    monkeypatch.setenv(MODELS_VARIABLE, str(weights))
    registry_path = tmp_path / "reg" / "registry.duckdb"
    base = _import_tiny(run_cli, registry_path, tiny_bert_dir)
    registry = Registry(registry_path)
    assert registry.models_dir == weights
    assert Registry(registry_path, models_dir=tmp_path / "other").models_dir == tmp_path / "other"
    result = finetune(_quick(base, name="tiny-env"), registry, progress=False)
    assert result.output_dir.parent == weights / "tiny-env"
    assert any(result.output_dir.iterdir())
    version = registry.resolve("tiny-env")
    assert Path(version.uri).is_relative_to(weights)
    assert not (tmp_path / "reg" / "models").exists()


@pytest.mark.training
def test_models_dir_on_the_cli_puts_the_weights_where_asked(
    tmp_path, monkeypatch, run_cli, tiny_bert_dir
):
    monkeypatch.delenv(MODELS_VARIABLE, raising=False)
    weights = tmp_path / "weights"
    registry_path = tmp_path / "reg" / "registry.duckdb"
    _import_tiny(run_cli, registry_path, tiny_bert_dir, "--models-dir", weights)
    code, out, err = run_cli(
        "--models-dir", weights, "run", "finetune",
        "-p", "base", tiny_bert_dir, "-p", "max_steps", "2", "-p", "batch_size", "8",
        "-p", "max_length", "32", "-p", "name", "tiny-cli",
        "--registry", registry_path, "--output-dir", tmp_path / "runs", "--json",
    )  # fmt: skip
    assert code == 0, err
    version = Registry(registry_path).resolve("tiny-cli")
    folder = Path(version.uri)
    assert folder.parent == weights / "tiny-cli" and any(folder.iterdir())
    assert not (tmp_path / "reg" / "models").exists()
    assert MODELS_VARIABLE not in __import__("os").environ  # the option lasts one command


# -- Registry.query is a read-only escape hatch ---------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO models (name, source, source_ref, task) VALUES ('x', 'hf', 'o/x', 't')",
        "UPDATE models SET task = 'other' RETURNING name",
        "DELETE FROM models",
        "DROP TABLE aliases",
        "CREATE TABLE notes (x INTEGER)",
        "SELECT 1; DELETE FROM models",
        "COPY models TO 'models.csv'",
    ],
)
def test_query_refuses_a_statement_that_writes(registry, sql, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    registry.upsert_models([_model("a")])
    if is_served(registry):  # no SQL at all over HTTP, read or write
        with pytest.raises(RegistryError, match="served over HTTP"):
            registry.query(sql)
        assert registry.model_names() == ["a"] and not (tmp_path / "models.csv").exists()
        return
    with pytest.raises(RegistryError) as caught:
        registry.query(sql)
    assert "read" in caught.value.problem and "methods" in caught.value.fix
    with registry.connect(), pytest.raises(RegistryError):  # inside a read-write block too
        registry.query(sql)
    assert registry.query("SELECT name, task FROM models") == [
        {"name": "a", "task": "text-embedding"}
    ]
    assert registry.schema_version() >= 1 and not (tmp_path / "models.csv").exists()


def test_query_still_reads(registry):
    if is_served(registry):
        pytest.skip("no SQL over HTTP (test_query_refuses_a_statement_that_writes[http])")
    registry.upsert_models([_model("a"), _model("b")])
    assert registry.query(
        "WITH named AS (SELECT name FROM models WHERE name > ?) SELECT * FROM named", ["a"]
    ) == [{"name": "b"}]
    with registry.session(read_only=True) as held:
        assert held is None
        assert registry.model_count() == 2


# -- SQL stays in the registry package ----------------------------------------------------------

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "transferlab"
# Calls that run SQL or hand out a registry connection; only registry/ may make them.
SQL_CALLS = re.compile(r"\.(query|execute|sql|connect|transaction)\(")
# Calls that match by name but are no SQL: a Jupyter kernel client's execute (messaging).
NOT_SQL = {("warm_kernels.py", "request = client.execute(")}


def test_no_sql_and_no_registry_connection_outside_the_registry_package():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith("registry/"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if SQL_CALLS.search(line) and (relative, line.strip()) not in NOT_SQL:
                found.append(f"{relative}:{number}: {line.strip()}")
    assert found == [], "\n".join(found)
