"""The artefact store of the REST service: model weights, content-addressed by SHA-256.

A folder now (a shared mount), an object store later: the rest of the service only calls
`receive`, `has`, `open_verified` and `sweep`. Layout::

    DIR/sha256/ab/cdef...   one file per artefact, named by its digest (read-only once stored)
    DIR/tmp/HOST-PID-RANDOM.part   an upload in progress

Names never become paths: an artefact is named by its digest, checked against 64 lower-case
hex digits before anything touches the disk, so no name a client sends can walk out of DIR.

The order of writes, and why (kill -9 at any point leaves neither a half version nor an
orphan for long): an upload streams into `tmp/`, hashing as it writes; the file is fsynced,
checked against the digest the client announced, and renamed into `sha256/` (atomic on one
file system). Only then may a version refer to it (`artefact://sha256/<hex>`, checked by the
registering request). So a version row never points at a missing file: a half version, which
every reader would see and fail to download, cannot happen. What a kill can leave is
invisible: a `.part` file (removed at the next start when its process is gone), or a stored
artefact no version refers to yet (its uploader died before registering it), removed by the
sweep at start once it is older than the grace period (default a day, so a client between
its upload and its registration keeps its file). A re-upload of the same bytes finds the file
and stores nothing twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from transferlab.errors import NotFoundError, TransferlabError
from transferlab.registry.artefact_files import (  # noqa: F401 (the service's names for them)
    _DIGEST,
    URI_PREFIX,
    ArtefactError,
    artefact_uri,
    check_digest,
    digest_of_uri,
)
from transferlab.registry.processes import pid_exists

CHUNK_BYTES = 1 << 20
DEFAULT_ORPHAN_GRACE_S = 24 * 3600.0


class CorruptArtefactError(TransferlabError):
    """A stored artefact whose bytes no longer match its digest (never served)."""


@dataclass(frozen=True)
class Stored:
    sha256: str
    size: int
    created: bool  # False: the same bytes were stored already

    def to_dict(self) -> dict:
        return {
            "sha256": self.sha256,
            "size": self.size,
            "uri": artefact_uri(self.sha256),
            "created": self.created,
        }


class ArtefactStore:
    """A folder of content-addressed artefacts (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().resolve()
        self.objects = self.root / "sha256"
        self.incoming = self.root / "tmp"

    def prepare(self) -> None:
        self.objects.mkdir(parents=True, exist_ok=True)
        self.incoming.mkdir(parents=True, exist_ok=True)

    def path_of(self, digest: str) -> Path:
        digest = check_digest(digest)
        return self.objects / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.path_of(digest).is_file()

    def size_of(self, digest: str) -> int:
        return self.path_of(digest).stat().st_size

    def writable(self) -> bool:
        return os.access(self.incoming, os.W_OK) and os.access(self.objects, os.W_OK)

    # -- upload -----------------------------------------------------------------------------

    async def receive(self, expected: str, chunks: AsyncIterator[bytes]) -> Stored:
        """Stream `chunks` into a temporary file while hashing them; store it under its digest
        only when that is `expected`. Any failure (a wrong digest, a client gone, a body over
        the limit) removes the temporary file and stores nothing."""
        expected = check_digest(expected)
        part = self.incoming / f"{host_label()}-{os.getpid()}-{secrets.token_hex(8)}.part"
        digest = hashlib.sha256()
        size = 0
        try:
            with open(part, "xb") as out:
                async for chunk in chunks:
                    if chunk:
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            found = digest.hexdigest()
            if found != expected:
                raise ArtefactError(
                    f"The upload's SHA-256 is {found}, not {expected} as announced "
                    f"({size} bytes received); nothing was stored.",
                    "Send the file again, whole, under the digest of its content.",
                )
            target = self.path_of(found)
            if target.is_file():
                return Stored(found, size, created=False)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(part, 0o444)
            os.replace(part, target)  # atomic: the file is whole or absent
            _fsync_folder(target.parent)
            return Stored(found, size, created=True)
        finally:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()

    # -- download ---------------------------------------------------------------------------

    def verified_chunks(self, digest: str) -> Iterator[bytes]:
        """The artefact's bytes, checked against its digest first (a file changed on disk is
        refused, never served). Raises before the first chunk, so a refusal is a clean 5xx."""
        path = self.path_of(digest)
        if not path.is_file():
            raise NotFoundError(
                f"No artefact {digest} in the store.",
                "Upload it first (PUT /v1/artefacts/<sha256>).",
            )
        handle = open(path, "rb")  # noqa: SIM115 - handed to the generator below
        try:
            found = hashlib.sha256()
            for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
                found.update(chunk)
            if found.hexdigest() != digest:
                raise CorruptArtefactError(
                    f"The stored artefact {digest} no longer matches its digest (it hashes to "
                    f"{found.hexdigest()}); it was not served.",
                    "Restore it from a backup or upload the original again; tell the admin.",
                )
            handle.seek(0)
        except BaseException:
            handle.close()
            raise
        return _chunks(handle)

    # -- housekeeping -----------------------------------------------------------------------

    def sweep(self, referenced: Iterable[str], *, grace_s: float = DEFAULT_ORPHAN_GRACE_S) -> dict:
        """Remove what a killed upload left: `.part` files whose process is gone (this host;
        older than the grace period for other hosts), and stored artefacts that no version
        refers to and that are older than the grace period. Returns what was removed."""
        removed: dict[str, list[str]] = {"parts": [], "orphans": []}
        now = time.time()
        host = host_label()
        for part in sorted(self.incoming.glob("*.part")):
            owner, pid_text, *_ = [*part.name.removesuffix(".part").split("-", 2), "", ""]
            pid = int(pid_text) if pid_text.isdigit() else None
            old = _age(part, now) > grace_s
            if (owner == host and pid is not None and not pid_exists(pid)) or old:
                with contextlib.suppress(FileNotFoundError):
                    part.unlink()
                    removed["parts"].append(part.name)
        keep = set(referenced)
        for folder in sorted(self.objects.glob("??")):
            for path in sorted(folder.iterdir()):
                digest = folder.name + path.name
                if _DIGEST.match(digest) and digest not in keep and _age(path, now) > grace_s:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        removed["orphans"].append(digest)
        return removed


def _chunks(handle) -> Iterator[bytes]:
    with handle:
        yield from iter(lambda: handle.read(CHUNK_BYTES), b"")


def host_label() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
