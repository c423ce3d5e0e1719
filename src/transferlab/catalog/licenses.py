"""The one licence table: which licence ids (Hugging Face Hub spelling) allow commercial use.

Every importer (local folders, the Hub, torchhub, tfhub) and the promotion gate read it, so a
licence means the same thing wherever a model comes from.
"""

from __future__ import annotations

import difflib

from transferlab.errors import ModelSourceError

COMMERCIAL_LICENSES = frozenset(
    {
        "apache-2.0",
        "mit",
        "cc0-1.0",
        "cc-by-2.0",
        "cc-by-2.5",
        "cc-by-3.0",
        "cc-by-4.0",
        "cc-by-sa-3.0",
        "cc-by-sa-4.0",
        "unlicense",
        "isc",
        "zlib",
        "bsl-1.0",
        "mpl-2.0",
        "afl-3.0",
        "ecl-2.0",
        "artistic-2.0",
        "postgresql",
        "wtfpl",
        "gpl-2.0",
        "gpl-3.0",
        "lgpl-2.1",
        "lgpl-3.0",
        "agpl-3.0",
        # Matched by the rules below too; listed so error messages can name them.
        "bsd-2-clause",
        "bsd-3-clause",
        "bsd-3-clause-clear",
        "openrail",
        "openrail++",
        "creativeml-openrail-m",
        "bigscience-openrail-m",
    }
)
NON_COMMERCIAL_LICENSES = frozenset(
    {
        "research-only",
        "other",
        "cc-by-nc-2.0",
        "cc-by-nc-3.0",
        "cc-by-nc-4.0",
        "cc-by-nc-sa-2.0",
        "cc-by-nc-sa-3.0",
        "cc-by-nc-sa-4.0",
        "cc-by-nc-nd-4.0",
    }
)


def normalize_license(license_id: str | None) -> str | None:
    """The Hub spelling of a licence id: stripped and lower case (None when empty)."""
    if license_id is None:
        return None
    text = str(license_id).strip().lower()
    return text or None


def commercial_use_for_license(license_id: str | None) -> bool | None:
    """Whether a licence id (Hub spelling) allows commercial use; None when we do not know it."""
    lic = normalize_license(license_id)
    if lic is None:
        return None
    if lic.startswith("cc-by-nc") or lic in NON_COMMERCIAL_LICENSES:
        return False
    if lic in COMMERCIAL_LICENSES or lic.startswith("bsd") or "openrail" in lic:
        return True
    return None


def known_license_ids() -> list[str]:
    """Every licence id the table names, sorted."""
    return sorted(COMMERCIAL_LICENSES | NON_COMMERCIAL_LICENSES)


def checked_license(license_id: str | None, option: str = "--license") -> str | None:
    """A licence id typed by a user, normalised; an id the table does not know is refused.

    A typo must not pass silently: an unknown id leaves commercial use unknown, which the
    production gate then refuses much later, far from the import that caused it. Only the ids
    the table names are accepted (not every spelling its rules would read, such as 'bsd3').
    """
    if license_id is None:
        return None
    lic = normalize_license(license_id)
    if lic is None:
        raise ModelSourceError(
            f"The licence {option} is empty.",
            "Give a licence id such as apache-2.0, mit or bsd-3-clause, or leave it out.",
        )
    known = known_license_ids()
    if lic in known:
        return lic
    close = difflib.get_close_matches(lic, known, n=3, cutoff=0.6)
    hint = f"Did you mean {', '.join(close)}? " if close else ""
    raise ModelSourceError(
        f"Unknown licence id {license_id!r} ({option}): transferlab cannot tell whether it "
        "allows commercial use.",
        f"{hint}Use a Hugging Face Hub licence id: {', '.join(known)}. For a custom licence "
        "use 'other' (recorded as not allowing commercial use).",
    )
