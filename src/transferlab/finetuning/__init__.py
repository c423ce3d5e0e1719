"""Fine-tuning internals: config resolution, training, artefacts, recording.

The public API is re-exported by `transferlab.finetune`; this package's `__init__` stays empty
of imports. Loading models from their sources and the metrics of logits, which discovery,
prediction and evaluation use too, are in `transferlab.models` (sources, logits).
"""
