"""What a kernel forked from a sweep's zygote need not redo in each run.

A fine-tune imports some modules inside functions (the head, the probe, scikit-learn's linear
models, the registry's DuckDB code), and some libraries build caches on first use: the
mapping transformers uses to load checkpoints (about 600 regular expressions, 0.25 s), the
method plug-ins' entry points, plotly's validators and figure template (0.2 s). A process
that fine-tunes in a loop pays these once; a sweep's runs each get a fresh kernel, so each
paid them (0.4-0.6 s a run, measured with cProfile against a second run in one process).

The zygote (transferlab.kernel_zygote) imports this module with the template's modules
(warm_kernels.LAZY_LIBRARIES), so its kernels start with all of it done. Importing it starts
no thread (the zygote would then refuse to fork), writes no file and opens no registry.
"""

from __future__ import annotations

import importlib

# Imported inside functions during a fine-tune run (found with sys.modules before and after).
LAZY_MODULES = (
    "transferlab.models.heads",
    "transferlab.models.probe",
    "transferlab.registry.duckdb_backend",
    "transferlab.registry.migrate",
    "transferlab.registry.artefact_files",
    "transferlab.sample_data",
    "sklearn.linear_model",
    "sklearn.model_selection",
    "peft.utils.transformers_weight_conversion",
)


def _warm() -> None:
    for name in LAZY_MODULES:
        importlib.import_module(name)
    from transformers.conversion_mapping import get_checkpoint_conversion_mapping

    get_checkpoint_conversion_mapping("bert")  # builds (and caches) every architecture's

    from transferlab.finetuning.methods.registry import all_methods

    all_methods()  # reads the method plug-ins' entry points

    import plotly.graph_objects as go

    from transferlab.figures import TEMPLATE

    go.Figure().update_layout(title="", xaxis_title="", yaxis_title="", template=TEMPLATE)


_warm()
