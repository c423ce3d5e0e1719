"""Loading labelled data: every format, every error a user can make, splits, samples and
fingerprints."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from transferlab.data import (
    MAX_HELD_OUT_VALIDATION,
    LabelledData,
    dataset_name,
    fingerprint,
    load_labelled_data,
    load_splits,
    sample_data_path,
    sample_few_shot,
    split_data,
    stratified_holdout,
)
from transferlab.errors import DataError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ROWS = [
    ("the parcel never came", "delivery"),
    ("I was charged twice", "billing"),
    ("where is my order", "delivery"),
    ("refund me please", "refund"),
    ("invoice is wrong", "billing"),
    ("money back for the broken lamp", "refund"),
]


def _write_csv(path: Path, rows=ROWS, header=("text", "label")) -> Path:
    pd.DataFrame(rows, columns=list(header)).to_csv(path, index=False)
    return path


def _pool(per_label: int = 10, labels=("a", "b", "c")) -> LabelledData:
    texts, ids = [], []
    for label_id, label in enumerate(labels):
        for i in range(per_label):
            texts.append(f"{label} example {i}")
            ids.append(label_id)
    return LabelledData(texts, ids, list(labels), "pool.csv", "pool")


# -- formats ----------------------------------------------------------------------------------


def test_csv_with_string_labels_numbers_them_in_sorted_order(tmp_path):
    data = load_labelled_data(_write_csv(tmp_path / "tickets.csv"))
    assert data.label_names == ["billing", "delivery", "refund"]
    assert data.texts[0] == "the parcel never came"
    assert [data.label_names[i] for i in data.labels] == [label for _, label in ROWS]
    assert data.name == "tickets"
    assert data.source == str(tmp_path / "tickets.csv")


def test_integer_labels_take_their_names_from_labels_txt(tmp_path):
    _write_csv(tmp_path / "train.csv", [("good film", 1), ("bad film", 0), ("fine", 1)])
    (tmp_path / "labels.txt").write_text("negative\npositive\n")
    data = load_labelled_data(tmp_path / "train.csv")
    assert data.label_names == ["negative", "positive"]
    assert data.labels == [1, 0, 1]
    assert data.name == tmp_path.name  # "train" says nothing: the folder names the data set


def test_a_specific_labels_file_wins_for_suffixed_split_files(tmp_path):
    _write_csv(tmp_path / "train_fine.csv", [("q1", 0), ("q2", 2)])
    (tmp_path / "labels.txt").write_text("A\nB\n")
    (tmp_path / "labels_fine.txt").write_text("A:x\nA:y\nB:z\n")
    data = load_labelled_data(tmp_path / "train_fine.csv")
    assert data.label_names == ["A:x", "A:y", "B:z"]


def test_integer_labels_without_names_are_named_by_their_number(tmp_path):
    data = load_labelled_data(_write_csv(tmp_path / "d.csv", [("x", 2), ("y", 0)]))
    assert data.label_names == ["0", "1", "2"]


def test_explicit_label_names_override_the_file(tmp_path):
    _write_csv(tmp_path / "d.csv", [("x", 1), ("y", 0)])
    (tmp_path / "labels.txt").write_text("no\nyes\n")
    data = load_labelled_data(tmp_path / "d.csv", label_names=["neg", "pos"])
    assert data.label_names == ["neg", "pos"]


@pytest.mark.parametrize("suffix", [".tsv", ".jsonl", ".json", ".parquet"])
def test_every_supported_format_loads_the_same_examples(tmp_path, suffix):
    frame = pd.DataFrame(ROWS, columns=["text", "label"])
    path = tmp_path / f"tickets{suffix}"
    if suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif suffix == ".json":
        path.write_text(json.dumps(frame.to_dict("records")))
    else:
        frame.to_parquet(path)
    data = load_labelled_data(path)
    reference = load_labelled_data(_write_csv(tmp_path / "tickets.csv"))
    assert (data.texts, data.labels, data.label_names) == (
        reference.texts,
        reference.labels,
        reference.label_names,
    )


def test_other_column_names_and_dataframes(tmp_path):
    frame = pd.DataFrame({"message": ["a b", "c d"], "intent": ["x", "y"]})
    data = load_labelled_data(frame, text_column="message", label_column="intent")
    assert data.label_names == ["x", "y"] and data.source == "DataFrame"


def test_sample_data_ships_with_the_package():
    train = load_labelled_data(sample_data_path("train"))
    test = load_labelled_data(sample_data_path("test"))
    assert len(train) == 320 and len(test) == 105
    assert train.label_names == test.label_names
    assert set(train.label_counts().values()) == {64}
    assert set(train.texts).isdisjoint(test.texts)
    assert train.name == test.name == "support_intents"
    assert (sample_data_path("train").parent / "README.md").is_file()
    with pytest.raises(DataError, match="no 'dev' split"):
        sample_data_path("dev")


# -- errors -----------------------------------------------------------------------------------


def test_missing_text_column_names_the_columns_that_exist(tmp_path):
    path = _write_csv(tmp_path / "d.csv", header=("sentence", "label"))
    with pytest.raises(DataError) as caught:
        load_labelled_data(path)
    assert str(path) in caught.value.problem
    assert "'text'" in caught.value.problem and "'sentence', 'label'" in caught.value.problem
    assert "text_column='sentence'" in caught.value.fix


def test_missing_label_column_is_reported(tmp_path):
    path = _write_csv(tmp_path / "d.csv", header=("text", "category"))
    with pytest.raises(DataError) as caught:
        load_labelled_data(path)
    assert "no column 'label'" in caught.value.problem
    assert "label_column='category'" in caught.value.fix


def test_empty_and_header_only_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        load_labelled_data(empty)
    header = tmp_path / "header.csv"
    header.write_text("text,label\n")
    with pytest.raises(DataError, match="header but no rows"):
        load_labelled_data(header)
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n  \n")
    with pytest.raises(DataError, match="empty"):
        load_labelled_data(blank)


def test_a_file_that_is_not_utf8_says_how_to_convert_it(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\ncaf\u00e9 au lait,drink\n".encode("cp1252"))
    with pytest.raises(DataError) as caught:
        load_labelled_data(path)
    assert "not UTF-8" in caught.value.problem and "line 2" in caught.value.problem
    assert "0xe9" in caught.value.problem
    assert "iconv -f WINDOWS-1252 -t UTF-8" in caught.value.fix


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefftext,label\nhello,x\n".encode())
    assert load_labelled_data(path).texts == ["hello"]


def test_unknown_suffix_missing_path_and_folder(tmp_path):
    odd = tmp_path / "data.xlsx"
    odd.write_bytes(b"PK")
    with pytest.raises(DataError, match="unknown file type '.xlsx'") as caught:
        load_labelled_data(odd)
    assert ".csv" in caught.value.fix
    _write_csv(tmp_path / "real.csv")
    with pytest.raises(DataError, match="does not exist") as caught:
        load_labelled_data(tmp_path / "typo.csv")
    assert "real.csv" in caught.value.fix
    with pytest.raises(DataError, match="is a folder"):
        load_labelled_data(tmp_path)


def test_blank_texts_and_missing_labels_name_their_rows(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\nfine,a\n,b\nok,\n")
    with pytest.raises(DataError, match=r"empty 'text': rows 3"):
        load_labelled_data(path)
    path.write_text("text,label\nfine,a\nalso fine,\n")
    with pytest.raises(DataError, match=r"without a 'label': rows 3"):
        load_labelled_data(path)


def test_negative_and_unnamed_integer_labels(tmp_path):
    _write_csv(tmp_path / "d.csv", [("x", -1), ("y", 0)])
    with pytest.raises(DataError, match="negative label ids"):
        load_labelled_data(tmp_path / "d.csv")
    _write_csv(tmp_path / "d.csv", [("x", 3), ("y", 0)])
    (tmp_path / "labels.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match="label ids '3' but only 2 label names"):
        load_labelled_data(tmp_path / "d.csv")


def test_bad_json_lines_are_reported_with_their_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": \n')
    with pytest.raises(DataError, match="Line 2 .* not valid JSON"):
        load_labelled_data(path)


def test_a_hub_dataset_fails_fast_and_clearly_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(DataError) as caught:
        load_labelled_data("someone/support-tickets")
    assert time.perf_counter() - started < 5
    assert "Hugging Face Hub is offline" in caught.value.problem
    assert "to_csv" in caught.value.fix


# -- splits, samples, fingerprints ------------------------------------------------------------


def test_stratified_holdout_is_seeded_and_keeps_every_label():
    pool = _pool(10)
    kept, held = stratified_holdout(pool, 0.2, seed=3)
    assert len(held) == 6 and len(kept) == 24
    assert set(held.label_counts().values()) == {2}
    assert set(kept.texts).isdisjoint(held.texts)
    again, held_again = stratified_holdout(pool, 0.2, seed=3)
    assert held_again.texts == held.texts
    assert stratified_holdout(pool, 0.2, seed=4)[1].texts != held.texts


def test_split_data_holds_out_test_then_validation():
    splits = split_data(_pool(10), test_fraction=0.2, validation_fraction=0.25, seed=0)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (18, 6, 6)
    assert splits.label_names == ["a", "b", "c"]


def test_a_validation_split_held_out_of_a_large_pool_is_capped():
    """Few-shot runs on a large pool evaluate every epoch: 10 % of 80k would be 8,000."""
    pool = _pool(20_000, labels=("a", "b", "c", "d"))
    splits = split_data(pool, test_fraction=0.0, validation_fraction=0.1, seed=0)
    assert len(splits.validation) == MAX_HELD_OUT_VALIDATION
    assert set(splits.validation.label_counts().values()) == {MAX_HELD_OUT_VALIDATION // 4}
    assert len(splits.train) == 80_000 - MAX_HELD_OUT_VALIDATION
    small = split_data(_pool(100), test_fraction=0.0, validation_fraction=0.1, seed=0)
    assert len(small.validation) == 30  # under the cap, the fraction holds


def test_given_test_sets_are_renumbered_to_the_training_labels():
    train = _pool(4, labels=("a", "b", "c"))
    test = LabelledData(["c text", "a text"], [1, 0], ["a", "c"], "test.csv", "t")
    splits = split_data(train, test=test)
    assert splits.test.label_names == ["a", "b", "c"]
    assert [splits.test.label_names[i] for i in splits.test.labels] == ["c", "a"]


def test_test_labels_never_seen_in_training_are_named():
    train = _pool(4, labels=("a", "b"))
    test = LabelledData(["x", "y", "z"], [0, 1, 2], ["a", "b", "zebra"], "test.csv", "t")
    with pytest.raises(DataError, match="'zebra'") as caught:
        split_data(train, test=test)
    assert "test.csv" in caught.value.problem


def test_few_shot_sampling_is_stratified_seeded_and_nested():
    pool = _pool(10)
    eight = sample_few_shot(pool, n_per_class=8, seed=1)
    four = sample_few_shot(pool, n_per_class=4, seed=1)
    assert set(eight.label_counts().values()) == {8}
    assert set(four.texts) <= set(eight.texts)
    assert sample_few_shot(pool, n_per_class=4, seed=1).texts == four.texts
    assert sample_few_shot(pool, n_per_class=4, seed=2).texts != four.texts
    assert sample_few_shot(pool) is pool


def test_short_classes_say_how_many_examples_they_have():
    data = LabelledData(
        ["a1", "a2", "a3", "b1", "c1", "c2"], [0, 0, 0, 1, 2, 2], list("abc"), "s.csv", "s"
    )
    with pytest.raises(DataError) as caught:
        sample_few_shot(data, n_per_class=3)
    assert "'b' has 1" in caught.value.problem and "'c' has 2" in caught.value.problem
    assert "'a'" not in caught.value.problem
    assert "n_per_class <= 1" in caught.value.fix


def test_n_train_splits_in_proportion_with_one_per_label_at_least():
    data = LabelledData(
        [f"t{i}" for i in range(23)], [0] * 20 + [1] * 2 + [2], list("abc"), "s.csv", "s"
    )
    sample = sample_few_shot(data, n_train=10, seed=0)
    assert len(sample) == 10
    assert sample.label_counts() == {"a": 8, "b": 1, "c": 1}
    with pytest.raises(DataError, match="between 3"):
        sample_few_shot(data, n_train=2)
    with pytest.raises(DataError, match="Set only one"):
        sample_few_shot(data, n_per_class=1, n_train=3)


def test_fingerprint_is_stable_and_sensitive_to_text_label_and_order(tmp_path):
    path = _write_csv(tmp_path / "d.csv")
    first = fingerprint(load_labelled_data(path))
    assert first == fingerprint(load_labelled_data(path))
    assert len(first) == 64
    data = load_labelled_data(path)
    swapped = data.subset([1, 0, 2, 3, 4, 5])
    relabelled = LabelledData(data.texts, [0] * len(data), data.label_names, "x", "x")
    edited = LabelledData([t + "!" for t in data.texts], data.labels, data.label_names, "x", "x")
    assert len({first, fingerprint(swapped), fingerprint(relabelled), fingerprint(edited)}) == 4


def test_load_splits_holds_out_before_sampling(tmp_path):
    rows = [(f"{label} message {i}", label) for label in ("x", "y") for i in range(20)]
    path = _write_csv(tmp_path / "pool.csv", rows)
    small = load_splits(path, test_fraction=0.25, n_per_class=2, seed=0)
    large = load_splits(path, test_fraction=0.25, n_per_class=10, seed=0)
    assert small.test.texts == large.test.texts  # same evaluation set whatever the size
    assert len(small.train) == 4 and small.validation is None
    assert set(small.train.texts).isdisjoint(small.test.texts)
    assert small.fingerprint() != large.fingerprint()
    assert small.summary()["splits"]["train"]["examples"] == 4


def test_load_splits_rejects_test_labels_missing_from_training(tmp_path):
    train = _write_csv(tmp_path / "train.csv", [("a", "x"), ("b", "x"), ("c", "y")])
    test = _write_csv(tmp_path / "test.csv", [("d", "x"), ("e", "z")])
    with pytest.raises(DataError, match="'z'"):
        load_splits(train, test=test)


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("data/support_intents_train.csv", "support_intents"),
        ("../shared/data/emotion/train.csv", "emotion"),
        ("../shared/data/trec/train_fine.csv", "trec_fine"),
        ("stanfordnlp/sst2", "sst2"),
        ("nyu-mll/glue:sst2", "glue-sst2"),
    ],
)
def test_dataset_names(source, name):
    assert dataset_name(source) == name


def test_a_shared_benchmark_set_loads_with_its_label_names():
    folder = SHARED_DATA / "emotion"
    if not (folder / "validation.csv").is_file():
        pytest.skip(f"shared benchmark data not found at {folder}")
    data = load_labelled_data(folder / "validation.csv")
    assert len(data) == 2000 and data.name == "emotion"
    assert data.label_names == (folder / "labels.txt").read_text().split()


# -- training sets a classifier cannot learn from ---------------------------------------------


def test_training_data_with_one_class_is_refused_naming_the_label(tmp_path):
    rows = [(f"charged twice, case {i}", "billing") for i in range(12)]
    path = _write_csv(tmp_path / "billing_only.csv", rows)
    with pytest.raises(DataError) as caught:
        load_splits(path, test_fraction=0.2)
    assert str(path) in caught.value.problem
    assert "only one label, 'billing'" in caught.value.problem
    assert "at least two classes" in caught.value.problem
    assert "label_column='label'" in caught.value.fix


def test_one_class_among_named_integer_labels_lists_the_names(tmp_path):
    path = _write_csv(tmp_path / "train.csv", [(f"text {i}", 2) for i in range(6)])
    (tmp_path / "labels.txt").write_text("billing\ndelivery\nrefund\n")
    with pytest.raises(DataError, match="only one label, 'refund'") as caught:
        load_splits(path, test_fraction=0.0)
    assert "'billing', 'delivery', 'refund'" in caught.value.problem


def test_validation_and_test_sets_may_be_dataframes():
    pool = pd.DataFrame(ROWS * 3, columns=["text", "label"])
    held = pd.DataFrame(ROWS[:2], columns=["text", "label"])
    splits = load_splits(pool, validation=held, test=held)
    assert splits.validation.texts == splits.test.texts == [text for text, _ in ROWS[:2]]
    assert splits.test.source == "DataFrame"


def test_an_empty_given_test_set_is_refused_not_ignored():
    empty = LabelledData([], [], ["billing", "delivery"], "empty-test", "e")
    with pytest.raises(DataError, match="The test set empty-test has no examples"):
        load_splits(pd.DataFrame(ROWS * 3, columns=["text", "label"]), test=empty)
