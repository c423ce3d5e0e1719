"""Reading notebooks does not pay for jsonschema's IRI parsers until an IRI is checked
(transferlab.deferred_imports), and checking one still works."""

from __future__ import annotations

import json
import subprocess
import sys

CHECK = """\
import json, sys
import transferlab
import papermill  # nbformat, jsonschema and its format checkers
from jsonschema import Draft7Validator
loaded_at_import = "rfc3987_syntax.syntax_helpers" in sys.modules
validator = Draft7Validator({"type": "string", "format": "iri"},
                            format_checker=Draft7Validator.FORMAT_CHECKER)
print(json.dumps({
    "loaded_at_import": loaded_at_import,
    "good": [e.message for e in validator.iter_errors("https://example.org/caf\\u00e9?q=1")],
    "bad": [e.message for e in validator.iter_errors("not an iri")],
    "loaded_after_check": "rfc3987_syntax.syntax_helpers" in sys.modules,
}))
"""


def test_iri_parsers_load_on_first_check_not_on_import():
    done = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True, timeout=120
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["loaded_at_import"] is False
    assert seen["good"] == []
    assert seen["bad"] == ["'not an iri' is not a 'iri'"]
    assert seen["loaded_after_check"] is True
