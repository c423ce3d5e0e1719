"""What is particular to the PostgreSQL registry: its errors (no server, no database, a newer
schema, a database that is no registry), several processes creating the schema at once,
writers taking turns while readers never wait, semantic search equal to DuckDB's, text stored
verbatim whatever it holds, and the SQL translation under it (no server needed for those)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from tests.conftest import database_error
from transferlab import ModelRecord, Registry
from transferlab.errors import RegistryError, RegistryLockedError
from transferlab.registry.dialect import DuckDBDialect
from transferlab.registry.migrate import available_migrations
from transferlab.registry.postgres_dialect import PostgresDialect, jaro_winkler
from transferlab.registry.postgres_sql import check_read_only, statements, to_pyformat

HAS_PSYCOPG = importlib.util.find_spec("psycopg") is not None
# A PostgreSQL server (the postgres_server / postgres_location fixtures skip, saying why, where
# none can be had), or at least the driver (for a location that is parsed but never reached).
postgres = pytest.mark.postgres
needs_psycopg = pytest.mark.skipif(not HAS_PSYCOPG, reason="psycopg is not installed")


def _model(name: str, **fields) -> ModelRecord:
    base = dict(name=name, source="hf", source_ref=f"org/{name}", task="feature-extraction")
    return ModelRecord(**{**base, **fields})


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the probe is closed


def _admin(location: str):
    import psycopg

    return psycopg.connect(location, autocommit=True)


# -- SQL text, no server ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = %s AND b = %s"),
        ("SELECT '?', \"a?\" FROM t WHERE x = ?", "SELECT '?', \"a?\" FROM t WHERE x = %s"),
        ("SELECT 1 WHERE u LIKE '%://%' AND a = ?", "SELECT 1 WHERE u LIKE '%%://%%' AND a = %s"),
        ("SELECT 'it''s ?' -- a ? here\n, ?", "SELECT 'it''s ?' -- a ? here\n, %s"),
        ("SELECT /* ? /* ? */ ? */ ?", "SELECT /* ? /* ? */ ? */ %s"),
        ("SELECT $$ ? $$, $q$ ?'$ $q$, ?", "SELECT $$ ? $$, $q$ ?'$ $q$, %s"),
        ("SELECT E'\\' ?', ?", "SELECT E'\\' ?', %s"),
        ("SELECT 5 % 2, ?", "SELECT 5 %% 2, %s"),
    ],
)  # fmt: skip
def test_question_marks_become_psycopg_placeholders_only_outside_literals(sql, expected):
    assert to_pyformat(sql) == expected


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT name FROM models",
        "  with x AS (SELECT 1) SELECT * FROM x;  ",
        "SELECT 'DELETE FROM models; DROP TABLE runs' AS text",
        'SELECT "update" FROM (SELECT 1 AS "update") t -- DROP TABLE x',
        "EXPLAIN SELECT 1",
    ],
)
def test_a_statement_that_only_reads_passes_the_check(sql):
    check_read_only(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM models",
        "SELECT 1; DELETE FROM models",
        "WITH gone AS (DELETE FROM models RETURNING *) SELECT * FROM gone",
        "SELECT * INTO copy_of_models FROM models",
        "SELECT * FROM models FOR UPDATE",
        "EXPLAIN ANALYZE DELETE FROM models",
        "COPY models TO '/tmp/models.csv'",
        "SET search_path = other",
        "",
    ],
)
def test_a_statement_that_writes_is_refused_by_the_check(sql):
    with pytest.raises(RegistryError) as caught:
        check_read_only(sql)
    assert "only reads" in caught.value.problem and "methods" in caught.value.fix


def test_statements_split_outside_literals_and_comments():
    assert statements("SELECT ';'; -- ; here\nSELECT $$;$$;;") == ["SELECT ';'", "SELECT $$;$$"]


def test_jaro_winkler_matches_duckdb():
    import duckdb

    pairs = [
        ("enc", "enk"), ("minilm", "all-MiniLM-L6-v2"), ("martha", "marhta"),
        ("dixon", "dicksonx"), ("", "a"), ("abc", "abc"), ("intents-lora", "intents"),
    ]  # fmt: skip
    con = duckdb.connect()
    for a, b in pairs:
        expected = con.execute("SELECT jaro_winkler_similarity(?, ?)", [a, b]).fetchall()[0][0]
        assert jaro_winkler(a, b) == pytest.approx(expected, abs=1e-9), (a, b)


def test_both_engines_have_the_same_numbered_migrations():
    duck = [(number, name) for number, name, _ in available_migrations("duckdb")]
    pg = [(number, name) for number, name, _ in available_migrations("postgresql")]
    assert duck == pg and duck[0][0] == 1


def test_dialect_fragments():
    assert DuckDBDialect().list_contains("m.tags", "?") == "list_contains(m.tags, ?)"
    assert PostgresDialect(()).list_contains("m.tags", "?") == "(? = ANY(m.tags))"
    assert PostgresDialect(()).json_text("p", ["a", "b"]) == "(p::json #>> '{a,b}')"
    with pytest.raises(ValueError):
        DuckDBDialect().json_text("p", ["a'); DROP TABLE x; --"])


# -- connecting ---------------------------------------------------------------------------------


@needs_psycopg
def test_an_unreachable_server_is_refused_fast_naming_host_database_and_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    port = _closed_port()
    registry = Registry(f"postgresql://lab@127.0.0.1:{port}/team_registry")
    started = time.monotonic()
    with pytest.raises(RegistryError) as caught:
        registry.model_names()
    assert time.monotonic() - started < 10
    problem = caught.value.problem
    assert f"127.0.0.1:{port}" in problem and "'team_registry'" in problem
    assert "cannot be reached" in problem
    assert "Start the server" in caught.value.fix and "Nothing was created" in caught.value.fix
    assert list(tmp_path.iterdir()) == []


@needs_psycopg
def test_the_cli_refuses_an_unreachable_server_without_a_traceback(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("runs", "--registry", f"postgresql://127.0.0.1:{_closed_port()}/r")
    assert code == 2 and out == ""
    assert "cannot be reached" in err and "fix:" in err and "Traceback" not in err


@postgres
def test_a_database_that_does_not_exist_is_named_and_not_created(postgres_server):
    location = postgres_server.url_for("transferlab_no_such_database")
    with pytest.raises(RegistryError) as caught:
        Registry(location).start_run("finetune")
    assert "'transferlab_no_such_database' does not exist" in caught.value.problem
    assert "createdb" in caught.value.fix and "Nothing was created" in caught.value.fix
    with _admin(postgres_server.admin_url) as con:
        found = con.execute(
            "SELECT count(*) FROM pg_database WHERE datname = 'transferlab_no_such_database'"
        ).fetchone()[0]
    assert found == 0


@postgres
def test_a_read_command_on_an_empty_database_says_there_is_no_registry(postgres_location, run_cli):
    code, _, err = run_cli("runs", "--registry", postgres_location)
    assert code == 2 and "No registry at" in err and "transferlab init" in err
    with _admin(postgres_location) as con:  # nothing was created
        assert con.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None


# -- the schema ---------------------------------------------------------------------------------


def _schema_fingerprint(location: str) -> list[tuple]:
    with _admin(location) as con:
        return con.execute(
            "SELECT table_name, (xpath('/row/n/text()', query_to_xml("
            "format('SELECT count(*) AS n FROM %I', table_name), false, true, '')))[1]::text "
            "FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
        ).fetchall()


@postgres
def test_a_schema_newer_than_this_transferlab_is_refused_and_left_unchanged(postgres_location):
    Registry(postgres_location).upsert_models([_model("enc")])
    with _admin(postgres_location) as con:
        con.execute("INSERT INTO schema_version (version, name) VALUES (999, '0999_future.sql')")
    before = _schema_fingerprint(postgres_location)
    with pytest.raises(RegistryError) as caught:
        Registry(postgres_location).model_names()
    assert "schema version 999" in caught.value.problem
    assert "newer transferlab" in caught.value.problem and "Upgrade" in caught.value.fix
    assert _schema_fingerprint(postgres_location) == before


@postgres
def test_a_database_holding_other_tables_is_not_taken_for_a_registry(postgres_location):
    with _admin(postgres_location) as con:
        con.execute("CREATE TABLE sales (day DATE, amount DOUBLE PRECISION)")
    with pytest.raises(RegistryError) as caught:
        Registry(postgres_location).start_run("finetune")
    assert "not a transferlab registry" in caught.value.problem and "sales" in caught.value.problem
    assert _schema_fingerprint(postgres_location) == [("sales", "0")]


OPENER = textwrap.dedent(
    """
    import sys, time
    from transferlab import Registry
    start = float(sys.argv[2])
    time.sleep(max(0.0, start - time.time()))  # all open the empty database at once
    registry = Registry(sys.argv[1], lock_timeout_s=60)
    run_id = registry.start_run("finetune", parameters={"worker": sys.argv[3]})
    registry.finish_run(run_id, "succeeded")
    print(registry.schema_version())
    """
)


@postgres
def test_several_processes_opening_an_empty_database_at_once_create_the_schema_once(
    postgres_location,
):
    start = time.time() + 3
    openers = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, postgres_location, str(start), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    outputs = [opener.communicate(timeout=120) for opener in openers]
    assert [o.returncode for o in openers] == [0] * 6, [err for _, err in outputs]
    latest = available_migrations("postgresql")[-1][0]
    assert {out.strip() for out, _ in outputs} == {str(latest)}
    registry = Registry(postgres_location)
    assert registry.query("SELECT version FROM schema_version ORDER BY 1") == [
        {"version": n} for n in range(1, latest + 1)
    ]
    assert len(registry.runs()) == 6


# -- taking turns -------------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys, time
    from transferlab import Registry
    registry = Registry(sys.argv[1])
    with registry.connect(read_only=sys.argv[2] == "read") as con:
        con.execute("SELECT count(*) FROM runs").fetchall()
        print("holding", flush=True)
        time.sleep(float(sys.argv[3]))
    """
)


def _hold(location: str, mode: str, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, location, mode, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "holding"
    return holder


@postgres
def test_a_writer_does_not_wait_for_readers(postgres_location):
    run_id = Registry(postgres_location).start_run("finetune")
    reader = _hold(postgres_location, "read", 5)
    try:
        started = time.monotonic()
        Registry(postgres_location, lock_timeout_s=30).finish_run(run_id, "succeeded")
        write_s = time.monotonic() - started
    finally:
        reader.kill()
        reader.wait()
    assert write_s < 2.5
    assert Registry(postgres_location).get_run(run_id)["status"] == "succeeded"


@postgres
def test_a_writer_past_the_bounded_wait_is_told_who_holds_the_registry(postgres_location):
    Registry(postgres_location).schema_version()
    holder = _hold(postgres_location, "write", 30)
    try:
        started = time.monotonic()
        with pytest.raises(RegistryLockedError) as caught:
            Registry(postgres_location, lock_timeout_s=1.0).start_run("finetune")
        elapsed = time.monotonic() - started
        # Readers are not held up by the writer.
        assert Registry(postgres_location, lock_timeout_s=1.0).runs() == []
    finally:
        holder.kill()
        holder.wait()
    assert 1.0 <= elapsed < 5
    assert f"PID {holder.pid}" in caught.value.problem
    assert "TRANSFERLAB_LOCK_TIMEOUT" in caught.value.fix
    assert Registry(postgres_location).runs() == []


@postgres
def test_a_failed_write_inside_a_session_rolls_back_only_itself(postgres_location):
    registry = Registry(postgres_location)
    registry.upsert_models([_model("a")])
    with registry.session():
        registry.upsert_models([_model("b")])
        with pytest.raises(database_error(registry)), registry.transaction() as con:
            registry.upsert_models([_model("c")], con=con)
            con.execute("INSERT INTO models (name) VALUES (NULL)")
        registry.upsert_models([_model("d")])
    assert registry.model_names() == ["a", "b", "d"]


def _server_pid(registry: Registry) -> int:
    return registry.query("SELECT pg_backend_pid() AS pid")[0]["pid"]


@postgres
def test_a_forked_child_opens_its_own_connection_and_leaves_its_parents_alone(
    postgres_location,
):
    registry = Registry(postgres_location)
    parent_pid = _server_pid(registry)  # this thread keeps that connection open
    assert _server_pid(registry) == parent_pid
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        code = 1
        try:
            os.write(write, str(_server_pid(Registry(postgres_location))).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    child_pid = int(os.read(read, 64).decode())
    os.close(read)
    assert child_pid != parent_pid
    assert _server_pid(registry) == parent_pid  # still open, still answering


@postgres
def test_a_kept_connection_left_inside_a_transaction_is_not_reused(postgres_location):
    """An operation cut short where it could not roll back (a signal during COMMIT) leaves its
    connection in a transaction; the next operation must not run inside it."""
    from transferlab.registry import postgres_connection

    registry = Registry(postgres_location)
    registry.upsert_models([_model("a")])
    kept = postgres_connection._slots.held[registry.backend.place.key]
    kept.raw.execute("BEGIN")
    kept.raw.execute(
        "INSERT INTO models (name, source, source_ref, task) VALUES ('ghost', 'hf', 'x', 't')"
    )
    registry.upsert_models([_model("b")])
    assert kept.raw.closed  # dropped, with its uncommitted row
    assert registry.model_names() == ["a", "b"]


@postgres
def test_threads_each_use_their_own_connection(postgres_location):
    from concurrent.futures import ThreadPoolExecutor

    registry = Registry(postgres_location)
    registry.schema_version()
    with ThreadPoolExecutor(4) as pool:
        ids = list(
            pool.map(lambda i: registry.start_run("finetune", parameters={"i": i}), range(40))
        )
    assert sorted(r["run_id"] for r in registry.runs()) == sorted(ids)


# -- semantic search ----------------------------------------------------------------------------


def _same_models(registry: Registry, vectors: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    tasks = ("feature-extraction", "text-classification", "fill-mask")
    records = [
        _model(
            f"org/model-{i:03d}",
            task=tasks[i % 3],
            tags=["multilingual"] if i % 4 == 0 else ["english"],
            license="mit" if i % 2 else "apache-2.0",
            commercial_use=bool(i % 5),
            parameters=int(rng.integers(1e6, 1e9)),
        )
        for i in range(len(vectors))
    ]
    registry.upsert_models(records)
    for record in records[::2]:
        registry.add_version(record.name, "base", f"hf://{record.name}")
    registry.save_embeddings(
        "all-MiniLM-L6-v2",
        [(r.name, "h", v.tolist()) for r, v in zip(records, vectors, strict=True)],
    )


@postgres
def test_semantic_search_ranks_and_scores_as_duckdb_does(tmp_path, postgres_location):
    from transferlab.search import SearchFilters

    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((240, 384)).astype(np.float32)
    vectors[7] = vectors[8]  # a tie: broken by name in both
    duck, pg = Registry(tmp_path / "registry.duckdb"), Registry(postgres_location)
    for registry in (duck, pg):
        _same_models(registry, vectors)
    queries = [rng.standard_normal(384).astype(np.float32).tolist() for _ in range(3)]
    queries.append(vectors[7].tolist())
    filters = [
        SearchFilters(),
        SearchFilters(task="text-classification"),
        SearchFilters(tags=["multilingual"], license="commercial"),
        SearchFilters(max_params=300_000_000, source="hf"),
    ]
    for query in queries:
        for search in filters:
            for limit in (1, 10, 500):
                expected = duck.search_rows(search, limit, query)
                found = pg.search_rows(search, limit, query)
                assert [r["name"] for r in found] == [r["name"] for r in expected]
                assert [r["score"] for r in found] == pytest.approx(
                    [r["score"] for r in expected], abs=1e-5
                )
                same_scores = zip(expected, found, strict=True)
                assert found == [{**e, "score": f["score"]} for e, f in same_scores]
        options = dict(tasks=["feature-extraction", "fill-mask"], head_types=[], license="any",
                       max_params=None, vector=query)  # fmt: skip
        expected = duck.candidate_models(**options)
        found = pg.candidate_models(**options)
        assert [r["name"] for r in found] == [r["name"] for r in expected]
        assert [r["similarity"] for r in found] == pytest.approx(
            [r["similarity"] for r in expected], abs=1e-5
        )


@postgres
def test_the_cached_embeddings_follow_every_change_and_not_a_rolled_back_one(postgres_location):
    from transferlab.search import SearchFilters

    registry = Registry(postgres_location)
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((20, 384)).astype(np.float32)
    _same_models(registry, vectors)
    query = rng.standard_normal(384).astype(np.float32).tolist()

    def best(limit: int) -> list[str]:
        return [r["name"] for r in registry.search_rows(SearchFilters(), limit, query)]

    best(3)  # loads the cache
    registry.save_embeddings("all-MiniLM-L6-v2", [("org/model-003", "h2", query)])
    before = best(2)
    assert before[0] == "org/model-003"
    with pytest.raises(RuntimeError), registry.session():
        registry.save_embeddings("all-MiniLM-L6-v2", [("org/model-004", "h3", query)])
        assert set(best(2)) == {"org/model-003", "org/model-004"}  # its own write
        raise RuntimeError("roll back")
    assert best(2) == before
    with _admin(postgres_location) as con:  # a change made outside transferlab
        con.execute("DELETE FROM model_embeddings WHERE name = 'org/model-003'")
    assert best(1) != ["org/model-003"]


# -- text is stored as given ------------------------------------------------------------------

NASTY = [
    "x'); DROP TABLE models; --",
    "? ?? %s %(name)s %% $1 $$ $tag$ \\' \\\\ /* -- */",
    "quote \" and ' and `tick`",
    "unicode ünïcødé 模型 🙂 \t tab \n newline",
]


@pytest.mark.parametrize("text", NASTY)
def test_text_that_looks_like_sql_is_stored_verbatim(registry, text):
    registry.upsert_models(
        [_model("enc", description=text, card_text=text, source_ref=text, tags=[text, "t"])]
    )
    model = registry.get_model("enc")
    assert (model["description"], model["card_text"], model["source_ref"]) == (text, text, text)
    assert model["tags"] == [text, "t"]
    version = registry.add_version("enc", "base", text, metadata={"note": text})
    assert registry.resolve("enc:1").uri == text and version.metadata == {"note": text}
    registry.set_alias("enc:1", "production", reason=text)
    assert registry.history("enc")[0]["reason"] == text
    run_id = registry.start_run("finetune", parameters={"base_model": text})
    registry.finish_run(run_id, "failed", error=text)
    run = registry.get_run(run_id)
    assert run["error"] == text and run["parameters"] == {"base_model": text}
    assert registry.query("SELECT description FROM models WHERE description = ?", [text]) == [
        {"description": text}
    ]
    assert registry.model_names() == ["enc"]
