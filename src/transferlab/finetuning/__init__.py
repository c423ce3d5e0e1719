"""Fine-tuning internals: config resolution, model sources, training, artefacts, recording.

The public API is re-exported by `transferlab.finetune`; this package's `__init__` stays empty
of imports so that `transferlab.data` can use `sources` without loading torch.
"""
