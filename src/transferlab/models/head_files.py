"""The files a pooled classifier's head is saved as (transferlab.models.heads). A module of
its own so that what only needs the names (the method table, a sweep worker checking a
request) does not import torch."""

HEAD_FILE = "head.safetensors"
HEAD_CONFIG = "head.json"
