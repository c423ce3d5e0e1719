"""The model layer shared by discovery and the fine-tuning methods: how an encoder pools
(`pooling`), frozen pooled embeddings (`embedding`), the standard probe (`probe`) and a
classifier head that fits the encoder (`heads`). Import the submodules: this package's
`__init__` stays free of imports so that importing it loads neither torch nor sklearn.
"""
