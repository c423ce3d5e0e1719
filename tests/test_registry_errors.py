"""Bad registry files, bad settings and bad references: each is refused with the problem and
the fix (exit status 2, no traceback), and the registry is left as it was. Bad settings and
references are checked on a DuckDB file and a PostgreSQL database (`small`); files that are no
registry and file permissions are about the DuckDB file alone (`small_file`)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import tempfile
from pathlib import Path

import duckdb
import pytest

from tests.conftest import direct, transferlab_executable
from transferlab import ModelRecord, Registry
from transferlab.errors import RegistryError


def _fill(registry: Registry) -> None:
    """One model `enc` (versions 1 and 2, alias champion -> 1) and one run."""
    registry.upsert_models(
        [ModelRecord(name="enc", source="hf", source_ref="org/enc", task="feature-extraction")]
    )
    registry.add_version("enc", "base", "hf://org/enc")
    registry.add_version("enc", "full", "hf://org/enc-full")
    registry.set_alias("enc:1", "champion", reason="first")
    registry.finish_run(registry.start_run("finetune"), "succeeded")


SERVED = True  # the registry suite: also through the service (conftest.py)


@pytest.fixture
def small(registry_location: str) -> str:
    """The location of a small registry (_fill), a DuckDB file or a PostgreSQL database."""
    _fill(Registry(registry_location))
    return registry_location


@pytest.fixture
def small_file(tmp_path) -> Path:
    """A small registry (_fill) in a DuckDB file."""
    registry = Registry(tmp_path / "registry.duckdb")
    _fill(registry)
    return registry.path


def _fingerprint(path: Path) -> tuple:
    """Bytes and mtime of a file, or the listing and mtime of a folder."""
    if path.is_dir():
        return sorted(p.name for p in path.iterdir()), path.stat().st_mtime_ns
    return path.read_bytes(), path.stat().st_mtime_ns


def _state(location: str | Path) -> list[dict]:
    return direct(Registry(location)).query(
        "SELECT (SELECT count(*) FROM aliases) AS aliases, "
        "(SELECT count(*) FROM audit_log) AS moves, (SELECT count(*) FROM runs) AS runs, "
        "(SELECT count(*) FROM model_versions) AS versions"
    )


def _refused(result: tuple[int, str, str], *expected: str) -> None:
    code, out, err = result
    assert code == 2, (out, err)
    assert err.startswith("error: ") and "\n  fix: " in err and "Traceback" not in err
    for text in expected:
        assert text in err


# -- files that are no registry ------------------------------------------------------------


def _text_file(path: Path) -> Path:
    path.write_text("model,accuracy\nenc,0.9\n")
    return path


def _sqlite_file(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE runs (run_id TEXT)")
    con.commit()
    con.close()
    return path


def _truncated_registry(path: Path) -> Path:
    source = path.with_name("whole.duckdb")
    Registry(source).start_run("finetune")
    path.write_bytes(source.read_bytes()[:20_000])
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    (path / "notes.txt").write_text("not a registry")
    return path


def _empty_file(path: Path) -> Path:
    path.touch()
    return path


def _other_duckdb_database(path: Path) -> Path:
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE sales (day DATE, amount DOUBLE)")
    con.close()
    return path


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_text_file, "is not a DuckDB database (it starts with b'model,ac')"),
        (_sqlite_file, "is a SQLite database, not a DuckDB registry"),
        (_truncated_registry, "could not be opened: it looks truncated or corrupt"),
        (_folder, "is a folder, not a DuckDB file"),
        (_empty_file, "is empty (0 bytes)"),
        (_other_duckdb_database, "is a DuckDB database but not a transferlab registry"),
    ],
    ids=["text", "sqlite", "truncated", "folder", "empty", "other-duckdb"],
)
def test_a_file_that_is_no_registry_is_refused_and_left_untouched(
    tmp_path, run_cli, make, expected
):
    path = make(tmp_path / "registry.duckdb")
    before = _fingerprint(path)
    for command in (
        ["runs"],
        ["search", "--task", "fill-mask"],
        ["alias", "set", "enc:1", "champion"],
        ["init", "--no-profile"],
    ):
        _refused(run_cli(*command, "--registry", path), expected, str(path))
        assert _fingerprint(path) == before, command
    assert not path.with_name(path.name + ".wal").exists()


# -- registries this user may only read ------------------------------------------------------


@pytest.fixture
def readable_folder(small_file):
    """A folder every user may read, holding a copy of `small_file`; made writable again
    after."""
    folder = Path(tempfile.mkdtemp(prefix="transferlab-readonly-"))
    folder.chmod(0o755)
    shutil.copy(small_file, folder / "registry.duckdb")
    (folder / "registry.duckdb").chmod(0o644)
    yield folder
    folder.chmod(0o755)
    shutil.rmtree(folder)


def _as_other_user(*args: str) -> subprocess.CompletedProcess:
    """`transferlab ARGS` as a user the permission bits apply to: `nobody` (through setpriv)
    when the tests run as root, who may write anything; else the current user."""
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv to drop to another user")
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    return subprocess.run(
        [*prefix, transferlab_executable(), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": tempfile.gettempdir()},
    )


def _make_read_only(folder: Path, which: str) -> None:
    root = os.geteuid() == 0
    path = folder / "registry.duckdb"
    if which == "file":  # the folder stays writable for that user
        folder.chmod(0o777 if root else 0o755)
        path.chmod(0o644 if root else 0o444)
    elif which == "folder":  # the file stays writable for that user
        path.chmod(0o666 if root else 0o644)
        folder.chmod(0o755 if root else 0o555)
    else:  # "unreachable": the folder may not be searched
        folder.chmod(0o700 if root else 0o600)


@pytest.mark.parametrize(
    ("which", "expected"),
    [("file", "the file {path} is read-only for"), ("folder", "its folder {folder} is read-only")],
)
def test_a_read_only_registry_can_be_read_and_a_write_says_why_it_cannot(
    readable_folder, which, expected
):
    path = readable_folder / "registry.duckdb"
    _make_read_only(readable_folder, which)
    before = _fingerprint(path)
    listed = _as_other_user("runs", "--registry", str(path), "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["status"] for r in json.loads(listed.stdout)] == ["succeeded"]
    shown = _as_other_user("show", "enc@champion", "--registry", str(path))
    assert shown.returncode == 0, shown.stderr
    written = _as_other_user("alias", "set", "enc:2", "champion", "--registry", str(path))
    assert written.returncode == 2, written.stderr
    assert "Traceback" not in written.stderr and "No registry at" not in written.stderr
    assert expected.format(path=path, folder=readable_folder) in written.stderr
    assert "Reading it works; this command writes." in written.stderr
    assert "fix: Ask its owner for write access" in written.stderr
    assert _fingerprint(path) == before


def test_a_registry_in_a_folder_that_may_not_be_searched_is_not_called_missing(readable_folder):
    path = readable_folder / "registry.duckdb"
    _make_read_only(readable_folder, "unreachable")
    result = _as_other_user("runs", "--registry", str(path))
    assert result.returncode == 2, result.stderr
    assert "No registry at" not in result.stderr and "Traceback" not in result.stderr
    assert f"The registry {path} cannot be reached" in result.stderr
    assert "permission denied on a folder of its path" in result.stderr
    readable_folder.chmod(0o755)
    assert stat.S_IMODE(path.stat().st_mode) in (0o644, 0o666)


def test_a_registry_path_through_a_file_says_so(tmp_path, run_cli):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    path = blocker / "sub" / "registry.duckdb"
    _refused(
        run_cli("init", "--no-profile", "--registry", path),
        f"The registry path {path} goes through a file as if it were a folder.",
    )
    assert blocker.read_text() == "x"


# -- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "0", "-5", "nan", "inf", "12s"])
def test_a_bad_lock_timeout_names_the_variable_and_what_it_expects(
    small, run_cli, monkeypatch, value
):
    if small.startswith("http"):
        pytest.skip("a served registry's lock waits are the service's (it reads the variable)")
    monkeypatch.setenv("TRANSFERLAB_LOCK_TIMEOUT", value)
    _refused(
        run_cli("runs", "--registry", small),
        f"TRANSFERLAB_LOCK_TIMEOUT={value!r}",
        "a positive number of seconds",
    )
    with pytest.raises(RegistryError, match="positive number of seconds"):
        Registry(small)
    monkeypatch.setenv("TRANSFERLAB_LOCK_TIMEOUT", " 2.5 ")
    assert Registry(small).lock_timeout_s == 2.5


# -- references ----------------------------------------------------------------------------


def test_show_of_a_version_or_alias_that_does_not_exist_lists_those_that_do(small, run_cli):
    _refused(
        run_cli("show", "enc:99", "--registry", small),
        "enc:99 does not name a version",
        "enc has no version 99",
        "Its versions: enc:1, enc:2; its aliases: enc@champion.",
    )
    _refused(
        run_cli("show", "enc@garbage", "--registry", small),
        "enc has no alias 'garbage'",
        "enc@champion",
    )
    code, out, _ = run_cli("show", "enc@champion", "--registry", small)
    assert code == 0 and "enc:2" in out


def test_history_of_an_unknown_model_says_there_is_none_and_suggests_one(small, run_cli):
    _refused(
        run_cli("history", "enx", "--registry", small),
        "No model named 'enx'",
        "Did you mean enc?",
    )
    code, out, _ = run_cli("history", "enc", "--registry", small, "--json")
    assert code == 0 and [m["to_version"] for m in json.loads(out)] == ["enc:1"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["alias", "list", "enx"], ["No model named 'enx'", "Did you mean enc?"]),
        (["alias", "remove", "enx", "champion"], ["No model named 'enx'", "Did you mean enc?"]),
        (["alias", "remove", "enc", "production"], ["enc@production is not set"]),
        (["alias", "set", "enc:1", "bad alias!"], ["Invalid alias 'bad alias!'"]),
        (["alias", "set", "enc:1", "a@b"], ["Invalid alias 'a@b'"]),
        (["alias", "set", "enc@nope", "staging"], ["enc has no alias 'nope'"]),
        (["alias", "set", "enc:7", "staging"], ["enc has no version 7", "enc:1, enc:2"]),
        (
            ["promote", "enc:9", "--to", "staging", "--reason", "r"],
            ["enc has no version 9", "enc:1, enc:2"],
        ),
        (["profile", "enc:3"], ["enc has no version 3"]),
        (["card", "enc@nope", "--output", "-"], ["enc has no alias 'nope'"]),
        (["report", "finetune-nope"], ["No run 'finetune-nope'", "transferlab runs"]),
        (["runs", "--limit", "0"], ["Invalid limit 0"]),
        (["show", "enc:"], ["Invalid version ''"]),
        (["show", ":1"], ["Invalid model name ''"]),
    ],
)
def test_bad_references_are_refused_and_change_nothing(small, run_cli, args, expected):
    before = _state(small)
    _refused(run_cli(*args, "--registry", small), *expected)
    assert _state(small) == before


def test_runs_filtered_to_nothing_says_which_kinds_exist(small, run_cli):
    code, out, _ = run_cli("runs", "--kind", "finetun", "--registry", small)
    assert code == 0
    assert out.strip() == "no runs with kind 'finetun'; kinds recorded: finetune"
