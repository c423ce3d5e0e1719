"""The model layer shared by discovery, fine-tuning, prediction and evaluation: where a model's
files come from and how they load (`sources`), how an encoder pools (`pooling`), frozen pooled
embeddings (`embedding`), the standard probe (`probe`), a classifier head that fits the encoder
(`heads`) and what logits give (`logits`: softmax, accuracy / macro-F1 / loss, confusion).
Import the submodules: this package's `__init__` stays free of imports so that importing it
loads neither torch nor sklearn.
"""
