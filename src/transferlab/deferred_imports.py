"""One import deferred that costs seconds in every process reading notebooks: rfc3987_syntax.

jsonschema (imported by nbformat, so by papermill) imports rfc3987_syntax as it loads, to check
the "iri" string formats, and that module builds its Earley parsers at import time: about 4 s
of CPU on a 2-core machine, paid by each process that reads or runs a notebook (the CLI, the
sweep driver, each sweep worker, each kernel zygote and cold kernel). No notebook schema uses
those formats; jsonschema keeps the import eager (jsonschema issue 1428).

`defer_iri_grammar`, called before jsonschema is imported, registers the real package as a
module whose code has not run yet: `is_valid_syntax` (what jsonschema takes from it) and any
other attribute run the package's own code, into that same module, on first use. Checking an
"iri" then works as before; it only pays the parsers when it happens.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from typing import Any

NAME = "rfc3987_syntax"


def defer_iri_grammar() -> None:
    if NAME in sys.modules or "jsonschema._format" in sys.modules:
        return  # already loaded (or jsonschema already took it): nothing left to save
    spec = importlib.util.find_spec(NAME)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    lock = threading.RLock()
    state = {"loaded": False}

    def load() -> Any:
        with lock:
            if not state["loaded"]:
                state["loaded"] = True
                del module.__getattr__
                spec.loader.exec_module(module)  # replaces is_valid_syntax with the real one
        return module

    def is_valid_syntax(term: str, value: str) -> bool:
        return load().is_valid_syntax(term, value)

    def __getattr__(attribute: str) -> Any:  # PEP 562: only for names not set yet
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return getattr(load(), attribute)

    module.is_valid_syntax = is_valid_syntax
    module.__getattr__ = __getattr__
    sys.modules[NAME] = module
