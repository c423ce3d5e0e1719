"""Model folders as artefacts of a served registry, on the client's side.

A version registered through `RemoteRegistry` with weights in a folder on the client's machine
is uploaded to the service's artefact store (service/artefacts.py) as one tar of the folder and
registered as `artefact://sha256/<hex>`. The tar is deterministic (entries sorted, times, owners
and modes fixed), so the same files give the same digest and a second upload stores nothing.
A client that loads such a version (models/sources.py asks `local_folder`) downloads it once,
from the served registry this process opened, into a local cache keyed by the digest
(`$TRANSFERLAB_ARTEFACT_CACHE`, default `~/.cache/transferlab/artefacts`), checks the bytes
against the digest, and unpacks them (tarfile's `data` filter: no absolute paths, no `..`, no
links out). Listing or showing a version downloads nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path

from transferlab.errors import TransferlabError

URI_PREFIX = "artefact://sha256/"
CACHE_VARIABLE = "TRANSFERLAB_ARTEFACT_CACHE"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_COMPLETE = ".transferlab-complete"  # written last: a folder without it is an unfinished unpack
CHUNK_BYTES = 1 << 20


class ArtefactError(TransferlabError):
    """An upload or download that cannot be done as asked; nothing was stored."""


def check_digest(digest: str) -> str:
    """The digest, if it is 64 lower-case hex digits; refused (without using it) otherwise."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        shown = digest[:80] if isinstance(digest, str) else type(digest).__name__
        raise ArtefactError(
            f"{shown!r} is not a SHA-256 digest: artefacts are named by the 64 lower-case hex "
            "digits of their content's SHA-256, never by a file name.",
            "Compute it with `sha256sum FILE` (or hashlib.sha256) and send that.",
        )
    return digest


def artefact_uri(digest: str) -> str:
    return URI_PREFIX + check_digest(digest)


def digest_of_uri(uri: str | None) -> str | None:
    """The digest an `artefact://sha256/<hex>` uri names; None for any other uri."""
    if not uri or not uri.startswith(URI_PREFIX):
        return None
    return check_digest(uri[len(URI_PREFIX) :])


def cache_root() -> Path:
    chosen = os.environ.get(CACHE_VARIABLE, "").strip()
    root = Path(chosen) if chosen else Path.home() / ".cache" / "transferlab" / "artefacts"
    return root.expanduser()


def cached_folder(digest: str) -> Path | None:
    """The unpacked folder of an artefact downloaded before, or None."""
    folder = cache_root() / check_digest(digest)
    return folder if (folder / _COMPLETE).is_file() else None


_fetchers: list[weakref.WeakMethod] = []  # the served registries this process opened


def add_fetcher(fetch: Callable[[str], Path | None]) -> None:
    """Where to download artefacts from: a RemoteRegistry's `fetch` (the newest first)."""
    _fetchers.insert(0, weakref.WeakMethod(fetch))


def local_folder(uri: str) -> Path | None:
    """The folder of an `artefact://` uri on this machine: cached, or downloaded now from a
    served registry this process opened; None when neither has it."""
    digest = check_digest(uri[len(URI_PREFIX) :])
    folder = cached_folder(digest)
    for reference in list(_fetchers):
        if folder is not None:
            break
        fetch = reference()
        if fetch is None:
            _fetchers.remove(reference)
            continue
        folder = fetch(uri)
    return folder


def _files(folder: Path) -> Iterable[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


def pack(folder: Path, archive: Path) -> str:
    """Write `folder`'s files into the tar `archive`, the same bytes for the same files; the
    SHA-256 of the archive."""
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in _files(folder):
            info = tarfile.TarInfo(path.relative_to(folder).as_posix())
            info.size, info.mode, info.mtime = path.stat().st_size, 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    return file_digest(archive)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def unpack(archive: Path, digest: str) -> Path:
    """Check `archive` against `digest` and unpack it into the cache; its folder."""
    found = file_digest(archive)
    if found != check_digest(digest):
        raise ArtefactError(
            f"The artefact downloaded as {digest} hashes to {found}: it was changed or cut "
            "short on the way; nothing was unpacked.",
            "Try again; if it persists, tell the service's admin (the stored file may be damaged).",
        )
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    target = root / digest
    if cached_folder(digest) is not None:
        return target
    work = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=root))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")
        (work / _COMPLETE).write_text(digest)
        if target.exists():  # an unfinished unpack of an earlier attempt
            shutil.rmtree(target, ignore_errors=True)
        try:
            work.rename(target)
        except OSError:
            if cached_folder(digest) is None:  # not another process that won the race
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
