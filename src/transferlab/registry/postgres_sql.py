"""The registry's SQL text as PostgreSQL (psycopg) takes it: `?` placeholders become `%s`, and
what Registry.query may run is checked, without a SQL parser.

The registry's statements use DuckDB's `?` placeholders. psycopg wants `%s`, and reads every `%`
in the text as the start of one, inside string literals too. So the text is scanned once
(cached per statement): outside string literals, quoted identifiers and comments a `?` becomes
`%s`; every `%` becomes `%%`, which psycopg turns back into `%`. Values are always sent as
parameters, never written into the text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

from transferlab.errors import RegistryError

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")

# Statements Registry.query may start with, and words that write (or hold locks, or change the
# session) wherever they appear outside literals: `WITH x AS (DELETE ...)`, `SELECT ... INTO`,
# `FOR UPDATE`. The read-only transaction a query runs in (when it is not inside a read-write
# block) stops what these miss.
_READ_STARTS = frozenset({"select", "with", "values", "table", "explain", "show"})
_WRITE_WORDS = frozenset(
    {
        "insert", "update", "delete", "merge", "upsert", "truncate", "copy", "create",
        "drop", "alter", "grant", "revoke", "call", "do", "lock", "vacuum", "analyze",
        "analyse", "reindex", "cluster", "comment", "refresh", "import", "listen", "notify",
        "prepare", "execute", "deallocate", "set", "reset", "discard", "begin", "commit",
        "rollback", "savepoint", "release", "into", "security", "load",
    }
)  # fmt: skip


def _pieces(sql: str) -> Iterator[tuple[str, str]]:
    """(kind, text) pieces of `sql`: 'code', 'literal' (quoted strings, quoted identifiers,
    dollar-quoted bodies) and 'comment'. An unterminated one runs to the end."""
    i, n, start = 0, len(sql), 0
    while i < n:
        char = sql[i]
        end = None
        if char == "'":
            escaped = i > 0 and sql[i - 1] in "eE" and (i < 2 or not sql[i - 2].isalnum())
            end = _quoted_end(sql, i, "'", backslash=escaped)
        elif char == '"':
            end = _quoted_end(sql, i, '"', backslash=False)
        elif sql.startswith("--", i):
            newline = sql.find("\n", i)
            end = n if newline < 0 else newline
        elif sql.startswith("/*", i):
            end = _comment_end(sql, i)
        elif char == "$" and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            tag = _DOLLAR_TAG.match(sql, i)
            if tag:
                close = sql.find(tag.group(0), tag.end())
                end = n if close < 0 else close + len(tag.group(0))
        if end is None:
            i += 1
            continue
        if start < i:
            yield "code", sql[start:i]
        yield ("comment" if char in "-/" else "literal"), sql[i:end]
        i = start = end
    if start < n:
        yield "code", sql[start:]


def _quoted_end(sql: str, i: int, quote: str, *, backslash: bool) -> int:
    j = i + 1
    while j < len(sql):
        if backslash and sql[j] == "\\":
            j += 2
            continue
        if sql[j] == quote:
            if sql.startswith(quote * 2, j):
                j += 2
                continue
            return j + 1
        j += 1
    return len(sql)


def _comment_end(sql: str, i: int) -> int:
    depth, j = 0, i
    while j < len(sql):
        if sql.startswith("/*", j):
            depth, j = depth + 1, j + 2
        elif sql.startswith("*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    return len(sql)


@functools.lru_cache(maxsize=1024)
def to_pyformat(sql: str) -> str:
    """`sql` with `?` placeholders as psycopg's `%s` and every `%` doubled."""
    out = []
    for kind, text in _pieces(sql):
        text = text.replace("%", "%%")
        out.append(text.replace("?", "%s") if kind == "code" else text)
    return "".join(out)


def statements(sql: str) -> list[str]:
    """The statements of `sql` (split at `;` outside literals and comments), comments
    dropped, empty ones left out."""
    found, current = [], []
    for kind, text in _pieces(sql):
        if kind == "comment":
            current.append(" ")
            continue
        if kind == "literal":
            current.append(text)
            continue
        parts = text.split(";")
        current.append(parts[0])
        for part in parts[1:]:
            found.append("".join(current))
            current = [part]
    found.append("".join(current))
    return [statement.strip() for statement in found if statement.strip()]


def code_words(sql: str) -> list[str]:
    """The words of `sql` outside literals and comments, lower case."""
    return [
        word.lower()
        for kind, text in _pieces(sql)
        if kind == "code"
        for word in _WORD.findall(text)
    ]


def check_read_only(sql: str) -> None:
    """Refuse (RegistryError) anything but one statement that only reads."""
    found = statements(sql)
    words = code_words(found[0]) if len(found) == 1 else []
    writes = sorted(set(words) & _WRITE_WORDS)
    if len(found) == 1 and words and words[0] in _READ_STARTS and not writes:
        return
    if len(found) != 1:
        shown = f"{len(found)} statements"
    elif writes:
        shown = f"{', '.join(w.upper() for w in writes)}"
    else:
        shown = (words[0].upper() if words else "nothing") + " (not a SELECT)"
    raise RegistryError(
        f"Registry.query runs one statement that only reads (SELECT); this holds {shown}. "
        "It is a read-only escape hatch for notebooks.",
        "Change the registry through its methods (add_version, set_alias, start_run, ...), "
        "which write in one transaction and keep the audit log.",
    )
