"""Fine-tuning methods as plug-ins: one module per method (lora, qlora, full, linear_probe),
each owning its defaults, training, and the saving *and* loading of its weights; a table of
them by name; and the entry-point group `transferlab.methods` through which another package
adds one. Nothing outside this package branches on a method's name.
"""

from transferlab.finetuning.methods.base import FinetuneMethod
from transferlab.finetuning.methods.registry import (
    DEFAULT_METHOD,
    ENTRY_POINT_GROUP,
    all_methods,
    broken_methods,
    get_method,
    method_for_version,
    method_names,
    method_origin,
    register_method,
)

__all__ = [
    "DEFAULT_METHOD",
    "ENTRY_POINT_GROUP",
    "FinetuneMethod",
    "all_methods",
    "broken_methods",
    "get_method",
    "method_for_version",
    "method_names",
    "method_origin",
    "register_method",
]
