"""Labelled text data: loading (CSV, TSV, JSONL, JSON, Parquet, Hugging Face datasets), splits,
few-shot samples and fingerprints.

Every problem with the data is raised as a DataError naming the file and what to do, before any
model is loaded: a run should not spend minutes loading weights to then trip over a typo in a
column name.
"""

from transferlab.data.labelled import (
    HUB_PREFIX,
    SAMPLE_DATA_NAME,
    SAMPLE_DATA_SPLITS,
    SUFFIX_FORMATS,
    DataSplits,
    LabelledData,
    Source,
    fingerprint,
    sample_data_path,
)
from transferlab.data.loading import (
    dataset_name,
    load_labelled_data,
    read_parquet,
    read_text_file,
)
from transferlab.data.splits import (
    MAX_HELD_OUT_VALIDATION,
    load_splits,
    require_two_classes,
    sample_few_shot,
    split_data,
    stratified_holdout,
)

__all__ = [
    "HUB_PREFIX",
    "MAX_HELD_OUT_VALIDATION",
    "SAMPLE_DATA_NAME",
    "SAMPLE_DATA_SPLITS",
    "SUFFIX_FORMATS",
    "DataSplits",
    "LabelledData",
    "Source",
    "dataset_name",
    "fingerprint",
    "load_labelled_data",
    "load_splits",
    "read_parquet",
    "read_text_file",
    "require_two_classes",
    "sample_data_path",
    "sample_few_shot",
    "split_data",
    "stratified_holdout",
]
