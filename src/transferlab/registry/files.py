"""What can be wrong with the file a registry path names, said before DuckDB touches it.

DuckDB reports a folder, a text file, a SQLite file (which it then tries to open through an
extension it would download), a truncated file or a file it may not write with IO errors
that name neither the problem nor the fix. The checks here read at most the first 16 bytes and
never write, so a refused file is left exactly as it was.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from transferlab.errors import RegistryError

# A DuckDB database file: an 8-byte checksum, then the magic bytes.
DUCKDB_MAGIC = b"DUCK"
DUCKDB_MAGIC_OFFSET = 8
SQLITE_MAGIC = b"SQLite format 3\x00"

_LEFT_ALONE = "The file was not changed."


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _elsewhere(path: Path) -> str:
    return (
        f"point --registry / TRANSFERLAB_REGISTRY at a registry file (e.g. "
        f"{path.parent / 'registry.duckdb'}), or create one with `transferlab init`"
    )


def _unreachable(path: Path) -> RegistryError:
    return RegistryError(
        f"The registry {path} cannot be reached by {_user()}: permission denied on a folder "
        "of its path.",
        "Ask the folder's owner for access (chmod o+rx), or point --registry / "
        "TRANSFERLAB_REGISTRY at a registry you can read.",
    )


def registry_exists(path: Path) -> bool:
    """Whether something exists at `path`; a folder on the way that this user may not search
    is reported as such, not taken for a missing registry."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        raise RegistryError(
            f"The registry path {path} goes through a file as if it were a folder.",
            "Check the path given to --registry / TRANSFERLAB_REGISTRY.",
        ) from None
    except PermissionError:
        raise _unreachable(path) from None
    return True


def check_registry_path(path: Path) -> None:
    """Refuse a path that exists but cannot be a registry: a folder, an unreadable file, an
    empty file, a SQLite file or any other file that is not a DuckDB database."""
    if not registry_exists(path):
        return
    if path.is_dir():
        raise RegistryError(
            f"The registry path {path} is a folder, not a DuckDB file.",
            f"Name a file inside it, e.g. --registry {path / 'registry.duckdb'}.",
        )
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except PermissionError:
        raise RegistryError(
            f"The registry {path} cannot be read by {_user()}: permission denied.",
            "Ask its owner for read access (chmod / chgrp), or work on a copy you can read.",
        ) from None
    if not head:
        raise RegistryError(
            f"The registry file {path} is empty (0 bytes): it is not a DuckDB database, "
            "perhaps a registry that was truncated.",
            "Restore it from a backup, or remove the empty file and run `transferlab init` to "
            f"start a new registry. {_LEFT_ALONE}",
        )
    if head.startswith(SQLITE_MAGIC):
        raise RegistryError(
            f"The registry file {path} is a SQLite database, not a DuckDB registry.",
            f"Use another name for the registry: {_elsewhere(path)}. {_LEFT_ALONE}",
        )
    if head[DUCKDB_MAGIC_OFFSET : DUCKDB_MAGIC_OFFSET + len(DUCKDB_MAGIC)] != DUCKDB_MAGIC:
        raise RegistryError(
            f"The registry file {path} is not a DuckDB database (it starts with {head[:8]!r}).",
            f"Check the path: {_elsewhere(path)}. {_LEFT_ALONE}",
        )


def create_folder(path: Path) -> None:
    """Create the folder a new registry goes in."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RegistryError(
            f"Cannot create the registry {path}: its folder {path.parent} cannot be created "
            f"({error.strerror or error}).",
            "Choose a folder you can write for --registry / TRANSFERLAB_REGISTRY.",
        ) from None


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def write_refusal(path: Path) -> RegistryError | None:
    """Why this process cannot write the registry at `path` (DuckDB also writes a `.wal` file
    beside it, and transferlab a `.lock` file), or None when it can."""
    folder = path.parent
    if path.exists() and not _writable(path):
        what = f"the file {path} is read-only for {_user()}"
    elif not folder.exists():
        return None  # created on first use
    elif not _writable(folder):
        what = (
            f"its folder {folder} is read-only for {_user()} (DuckDB writes a .wal file and "
            "transferlab a .lock file beside the registry)"
        )
    else:
        return None
    if not path.exists():
        return RegistryError(
            f"Cannot create the registry {path}: {what}.",
            "Choose a folder you can write for --registry / TRANSFERLAB_REGISTRY.",
        )
    return RegistryError(
        f"Cannot write to the registry {path}: {what}. Reading it works; this command writes.",
        "Ask its owner for write access (chmod u+w on the file and its folder), or work on a "
        f"copy: cp {path} ~/registry.duckdb and pass --registry ~/registry.duckdb. " + _LEFT_ALONE,
    )


def writable(path: Path) -> bool:
    return write_refusal(path) is None


def open_failure(path: Path, error: BaseException, *, read_only: bool) -> RegistryError:
    """A DuckDB error from attaching `path`, as a problem and a fix."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if "Permission denied" in text or isinstance(error, PermissionError):
        refusal = None if read_only else write_refusal(path)
        if refusal is not None:
            return refusal
        return RegistryError(
            f"The registry {path} cannot be opened by {_user()}: permission denied ({text}).",
            "Ask its owner for access (chmod / chgrp on the file and its folder), or work on a "
            "copy you can read and write.",
        )
    try:
        check_registry_path(path)
    except RegistryError as precise:
        return precise
    return RegistryError(
        f"The registry file {path} could not be opened: it looks truncated or corrupt "
        f"(DuckDB: {text}).",
        "Restore it from a backup. To start afresh, move it aside and run `transferlab init`. "
        + _LEFT_ALONE,
    )
