"""A registry served over HTTP (`transferlab serve`), used as a local one is.

`Registry("http(s)://host:port")` (or TRANSFERLAB_REGISTRY / --registry) returns a
`RemoteRegistry`: every Registry method a client may call (remote_calls.CALLS) is one
`POST /v1/registry/<method>` with $TRANSFERLAB_TOKEN as the Bearer token, run by the service for
the token's user, its value or its error coming back as the same Python value or the same
TransferlabError (problem and fix), so the CLI, the Python API and the templates behave and
print as they do on a file. What has no meaning over HTTP is refused with a message: SQL
(`query`), connections and transactions (a method is one transaction on the service).

What stays on the client's machine: its runs' processes (a run records the client's host and
pid, and a client finds its own runs whose process is gone, as a local registry does when it
opens) and its folders (an interrupted fine-tune's unfinished output folder is removed here,
never by the service).

Reads are retried when the service cannot be reached or answers 502/503/504 (a restart, a
database that went away for a moment), up to `retry_s` seconds; a write is retried only when
it certainly was not done: its request never reached the service (connection refused), or the
service answers 503 saying its database dropped the write before the commit
(`X-Transferlab-Retry-Safe: true`). So no write is done twice.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from transferlab import errors
from transferlab.errors import RegistryError, TransferlabError
from transferlab.registry.backends import MODELS_VARIABLE
from transferlab.registry.identity import TOKEN_VARIABLE
from transferlab.registry.remote_calls import CALLS, READS, dumps, loads, uris_of

HTTP_SCHEMES = ("http", "https")
RETRY_VARIABLE = "TRANSFERLAB_RETRY_S"
DEFAULT_RETRY_S = 30.0
TIMEOUT_S = 300.0  # a call (a big sync or leaderboard may take a while on a busy service)
_RETRY_STATUS = (502, 503, 504)
_SAVE_EMBEDDINGS_BATCH = 200  # rows per call, under the service's body limit


class RemoteRegistry:
    """The Registry API of a registry served at `location` (see the module docstring)."""

    path: Path | None = None  # no file on this machine
    removes_model_folders = True  # this machine's folders are this client's to clean

    def __init__(
        self,
        location: str,
        *,
        lock_timeout_s: float | None = None,
        actor: str | None = None,
        models_dir: str | os.PathLike[str] | None = None,
        token: str | None = None,
        retry_s: float | None = None,
    ):
        parts = urlsplit(location.rstrip("/"))
        self.location = urlunsplit(parts)
        #: the location as messages show it (without a password)
        self.display_location = self.location
        if parts.password is not None:
            self.display_location = self.location.replace(f":{parts.password}@", "@", 1)
        self._token = token if token is not None else os.environ.get(TOKEN_VARIABLE) or None
        chosen = models_dir or os.environ.get(MODELS_VARIABLE, "").strip()
        self._models_dir = Path(chosen).expanduser().resolve() if chosen else None
        if retry_s is None:
            retry_s = float(os.environ.get(RETRY_VARIABLE, DEFAULT_RETRY_S))
        self.retry_s = retry_s
        self.lock_timeout_s = lock_timeout_s
        self._checked_runs = False
        self._connect()

    def _connect(self) -> None:
        """The HTTP client (with the token), and this registry as where a loader meeting an
        artefact:// uri downloads it from."""
        import httpx

        from transferlab.registry.artefact_files import add_fetcher

        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        self._http = httpx.Client(base_url=self.location, headers=headers, timeout=TIMEOUT_S)
        add_fetcher(self.fetch)

    def __repr__(self) -> str:
        return f"RemoteRegistry({self.display_location!r})"

    def __getstate__(self) -> dict:  # a sweep's workers get a copy: the HTTP client is rebuilt
        state = dict(self.__dict__)
        state.pop("_http", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._connect()

    # -- what a local registry has that a served one has not --------------------------------

    @property
    def models_dir(self) -> Path:
        """Where this client writes model weights: --models-dir or TRANSFERLAB_MODELS."""
        if self._models_dir is None:
            raise RegistryError(
                f"The registry {self.display_location} is served over HTTP: there is no folder "
                "beside it for model weights.",
                "Give --models-dir DIR or set TRANSFERLAB_MODELS=DIR (a folder every machine "
                "that loads these weights can read, e.g. a shared mount).",
            )
        return self._models_dir

    @contextlib.contextmanager
    def session(self, *, read_only: bool = False) -> Iterator[None]:
        """Nothing to hold open: each call is one request (and one transaction) on the
        service."""
        yield

    def connect(self, *, read_only: bool = False) -> Any:
        raise self._no_sql("connections")

    def transaction(self) -> Any:
        raise self._no_sql("transactions")

    def query(self, sql: str, params: Any = ()) -> list[dict]:
        raise self._no_sql("SQL queries")

    def _no_sql(self, what: str) -> RegistryError:
        return RegistryError(
            f"The registry {self.display_location} is served over HTTP: {what} are not "
            "available to its clients.",
            "Use the Registry's methods (search, show, results, leaderboard), or run the "
            "query where the registry's database is.",
        )

    @property
    def actor(self) -> str:
        """Who the service records as the writer: the token's user (`anonymous` without)."""
        user = self.whoami()
        return user.name if user is not None else "anonymous"

    # -- methods that need the client's side ------------------------------------------------

    def start_run(self, kind: str, **fields: Any) -> str:
        """Record a run as running, with this process's host, pid and start time. The run id
        is made here, so a start whose commit was cut off (the database restarting) is looked
        up, and sent again only if it is not there: never recorded twice."""
        from transferlab.registry.processes import this_process
        from transferlab.registry.runs import new_run_id

        self._interrupt_gone_runs_once()
        fields.setdefault("process", list(this_process()))
        fields["run_id"] = fields.get("run_id") or new_run_id(kind)
        try:
            return self._call("start_run", [kind], fields)
        except errors.RegistryUnavailableError:
            if self.run_exists(fields["run_id"]):
                return fields["run_id"]
            return self._call("start_run", [kind], fields)

    def finish_run(self, run_id: str, status: str, **fields: Any) -> None:
        """Record how a run ended; an interrupted fine-tune's unfinished folder goes (here).
        Finishing twice the same way is finishing once, so a cut-off call is sent again."""
        self._call("finish_run", [run_id, status], fields, idempotent=True)
        if status == "interrupted":
            self._remove_unfinished_folder(run_id)

    def interrupt_gone_runs(self) -> list[str]:
        """Mark this host's runs whose process is gone as interrupted (as a local registry
        does when it opens); their ids. Nothing when this token may not write."""
        from transferlab.registry.processes import gone_reason, interrupted_error, this_host

        host, gone = this_host(), []
        for run in self.runs(status="running", limit=10_000):
            if run.get("host") != host:
                continue
            note = gone_reason(run.get("pid"), run.get("process_start"))
            if note is None:
                continue
            error = interrupted_error(run["pid"], host, note)
            try:
                self.finish_run(run["run_id"], "interrupted", error=error)
            except errors.PermissionDeniedError:
                return gone
            gone.append(run["run_id"])
        return gone

    def _interrupt_gone_runs_once(self) -> None:
        if not self._checked_runs:
            self._checked_runs = True
            with contextlib.suppress(errors.AuthenticationError, errors.PermissionDeniedError):
                self.interrupt_gone_runs()

    def _remove_unfinished_folder(self, run_id: str) -> None:
        from transferlab.registry.runs import MODEL_FOLDER_KINDS, remove_unfinished_model_folder

        run = self.get_run(run_id)
        folder = (run.get("parameters") or {}).get("output_dir")
        ours = run.get("kind") in MODEL_FOLDER_KINDS and isinstance(folder, str) and folder
        if ours and not self.run_version_ids(run_id):
            remove_unfinished_model_folder(Path(folder), self._models_dir)

    def load_catalog(self, records: Any, uri_for: Callable) -> dict:
        records = list(records)
        return self._call("load_catalog", [records], {"uris": uris_of(records, uri_for)})

    def sync_catalog(self, records: Any, uri_for: Callable, events: Any) -> dict:
        records = list(records)
        return self._call(
            "sync_catalog", [records], {"uris": uris_of(records, uri_for), "events": list(events)}
        )

    def register_import(self, record: Any, uri: str, *, check_existing: Any = None, **fields: Any):
        """As Registry.register_import; `check_existing` (a function) runs here, on the model
        the registry holds under that name, before the import is sent."""
        if check_existing is not None:
            try:
                known = self.get_model(record.name)
            except errors.NotFoundError:
                known = None
            if known is not None:
                check_existing(known)
        return self._call("register_import", [record, uri], fields)

    # -- weights: uploaded to the service's artefact store, downloaded into a local cache ----

    def add_version(self, model_name: str, kind: str, uri: str | None, **fields: Any):
        """As Registry.add_version; weights in a folder here are uploaded first."""
        return self._call("add_version", [model_name, kind, self._stored(uri)], fields)

    def record_derived_version(self, record: Any, kind: str, uri: str, **fields: Any):
        """As Registry.record_derived_version; weights in a folder here (the derived model's,
        and a base's registered with it) are uploaded first."""
        if fields.get("base") is not None:
            base_record, base_uri, base_metadata = fields["base"]
            fields["base"] = (base_record, self._stored(base_uri), base_metadata)
        return self._call("record_derived_version", [record, kind, self._stored(uri)], fields)

    def _stored(self, uri: str | None) -> str | None:
        """`uri`, or for a folder on this machine the artefact uri of its upload."""
        if not uri or "://" in uri or not Path(uri).is_dir():
            return uri
        import tempfile

        from transferlab.registry.artefact_files import artefact_uri, pack

        with tempfile.TemporaryDirectory(prefix="transferlab-upload-") as work:
            archive = Path(work) / "weights.tar"
            digest = pack(Path(uri), archive)
            with archive.open("rb") as handle:
                response = self._http.put(
                    f"/v1/artefacts/{digest}",
                    content=handle,
                    headers={"Content-Type": "application/octet-stream"},
                )
        if response.status_code >= 400:
            raise self._error("upload", response)
        return artefact_uri(digest)

    def fetch(self, uri: str | None) -> Path | None:
        """The local folder of an `artefact://` uri, downloaded and checked if not cached;
        None for any other uri."""
        import tempfile

        from transferlab.registry.artefact_files import (
            cache_root,
            cached_folder,
            digest_of_uri,
            unpack,
        )

        digest = digest_of_uri(uri)
        if digest is None:
            return None
        folder = cached_folder(digest)
        if folder is not None:
            return folder
        cache_root().mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".download-", dir=cache_root()) as work:
            archive = Path(work) / "weights.tar"
            with self._http.stream("GET", f"/v1/artefacts/{digest}") as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._error("download", response)
                with archive.open("wb") as handle:
                    for chunk in response.iter_bytes():
                        handle.write(chunk)
            return unpack(archive, digest)

    def save_embeddings(self, embedder: str, rows: Any) -> int:
        rows, saved = list(rows), 0
        for start in range(0, len(rows), _SAVE_EMBEDDINGS_BATCH):
            saved += self._call(
                "save_embeddings", [embedder, rows[start : start + _SAVE_EMBEDDINGS_BATCH]], {}
            )
        return saved

    # -- every other method: one call -------------------------------------------------------

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or name not in CALLS:
            raise AttributeError(
                f"{type(self).__name__} has no attribute {name!r} (a served registry offers "
                "the methods in registry/remote_calls.py)"
            )

        def method(*args: Any, **kwargs: Any) -> Any:
            return self._call(name, list(args), kwargs)

        method.__name__ = name
        return method

    def _call(self, method: str, args: list, kwargs: dict, *, idempotent: bool = False) -> Any:
        if kwargs.get("con") is not None:
            raise self._no_sql("connections")
        kwargs.pop("con", None)
        body = dumps({"args": args, "kwargs": kwargs})
        retry_all = idempotent or method in READS
        response = self._post(f"/v1/registry/{method}", body, retry_all=retry_all)
        if response.status_code >= 400:
            raise self._error(method, response)
        return loads(response.content)["value"]

    def _post(self, path: str, body: bytes, *, retry_all: bool) -> Any:
        import httpx

        deadline, pause = time.monotonic() + self.retry_s, 0.2
        while True:
            try:
                response = self._http.post(
                    path, content=body, headers={"Content-Type": "application/json"}
                )
            except httpx.ConnectError as error:  # never reached the service: safe to retry
                problem: Exception | None = error
                response = None
            except httpx.TransportError as error:
                if not retry_all:
                    raise self._unreachable(error, retried=False) from error
                problem, response = error, None
            else:
                if not self._retry(response, retry_all):
                    return response
                problem = None
            if time.monotonic() + pause > deadline:
                if response is not None:
                    return response
                raise self._unreachable(problem, retried=True)
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    @staticmethod
    def _retry(response: Any, retry_all: bool) -> bool:
        """Whether to send a call again: a read on 502/503/504, a write only when the service
        says its database dropped it before the commit (nothing was written)."""
        if response.status_code not in _RETRY_STATUS:
            return False
        return retry_all or response.headers.get("X-Transferlab-Retry-Safe") == "true"

    def _unreachable(self, error: Exception | None, *, retried: bool) -> RegistryError:
        again = f" (retried for {self.retry_s:g} s)" if retried else ""
        return RegistryError(
            f"The registry service at {self.display_location} could not be reached{again}: "
            f"{type(error).__name__}: {error}",
            "Check that `transferlab serve` runs there and the address is right; a write "
            "that was cut off may or may not have been done, so check before repeating it "
            f"(set {RETRY_VARIABLE} to retry longer).",
        )

    def _error(self, method: str, response: Any) -> TransferlabError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        problem = body.get("error") or f"{method}: HTTP {response.status_code}"
        fix = body.get("fix")
        kind = getattr(errors, str(body.get("kind")), None)
        if not (isinstance(kind, type) and issubclass(kind, TransferlabError)):
            kind = RegistryError if response.status_code >= 500 else TransferlabError
        error = kind.__new__(kind)
        TransferlabError.__init__(error, problem, fix)
        if isinstance(error, errors.RegistryUnavailableError):
            error.retry_safe = response.headers.get("X-Transferlab-Retry-Safe") == "true"
        return error
