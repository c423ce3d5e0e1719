"""Suite files: the bundled example, where data resolves to, and errors that name the file, the
line, the key and what was expected, before any model is loaded."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from transferlab.evaluation import (
    SuiteError,
    bundled_suites,
    check_suite_data,
    load_suite,
    load_task_data,
)
from transferlab.evaluation.suites import SUITES_DIR

SAMPLE = "package:sample_data/support_intents_test.csv"
INTENTS = ["account_access", "billing", "delivery", "refund", "technical_issue"]


def write_suite(folder: Path, body: str, name: str = "suite.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def minimal(task: str = "", data: str = SAMPLE) -> str:
    return f"""
    name: demo
    tasks:
      - name: intents
        data: {data}
        metrics: [accuracy]
    {task}
    """


def test_the_bundled_suite_loads_and_its_data_checks_out():
    assert "support_intents" in bundled_suites()
    suite = load_suite("support_intents")
    assert suite.path == SUITES_DIR / "support_intents.yaml"
    task = suite.tasks[0]
    assert Path(task.source).is_file() and task.source.endswith("support_intents_test.csv")
    assert list(task.label_names or []) == INTENTS
    assert {"accuracy", "macro_f1", "micro_f1", "mcc", "ece", "per_class"} <= set(task.metrics)
    assert task.latency is True
    (data,) = check_suite_data(suite)
    assert len(data.data) == 105 and data.label_names == INTENTS and data.dataset
    assert sorted(data.slices) == [
        "text_length=0-70",
        "text_length=70-90",
        "text_length=90-1000",
    ]
    assert sum(len(rows) for rows in data.slices.values()) == 105  # every text in one bin


def test_relative_data_resolves_from_the_suite_folder_not_the_cwd(tmp_path, monkeypatch):
    folder = tmp_path / "suites"
    folder.mkdir()
    (folder / "data").mkdir()
    (folder / "data" / "tickets.csv").write_text(
        "message,intent,channel\nwhere is my parcel,delivery,email\nrefund please,refund,chat\n"
        "charged twice,billing,email\n",
        encoding="utf-8",
    )
    path = write_suite(
        folder,
        """
        name: tickets
        description: three tickets
        tasks:
          - name: intents
            data: data/tickets.csv
            text_column: message
            label_column: intent
            metrics: [accuracy, macro_f1]
            slices:
              - {by: column, column: channel}
              - {by: text_length, bins: [0, 14, 100]}
        """,
    )
    monkeypatch.chdir(tmp_path)
    suite = load_suite(path)
    assert suite.tasks[0].source == str((folder / "data" / "tickets.csv").resolve())
    data = load_task_data(suite, suite.tasks[0])
    assert data.label_names == ["billing", "delivery", "refund"]  # string labels, sorted
    assert {k: v.tolist() for k, v in data.slices.items()} == {
        "channel=chat": [1],
        "channel=email": [0, 2],
        "text_length=0-14": [1, 2],
        "text_length=14-100": [0],
    }


def test_max_examples_takes_the_same_sample_every_time(tmp_path):
    path = write_suite(tmp_path, minimal("    max_examples: 20"))
    first = load_task_data(load_suite(path), load_suite(path).tasks[0])
    second = load_task_data(load_suite(path), load_suite(path).tasks[0])
    assert len(first.data) == 20 and first.data.texts == second.data.texts
    assert first.data.label_names == INTENTS


# (suite body, key the error must name, words of what was expected)
INVALID = [
    ("tasks: []\n", "key name", "Expected a name"),
    ("name: demo\ntasks: []\n", "key tasks", "non-empty list of tasks"),
    (
        """
        name: demo
        tasks:
          - {name: a, data: PKG, metrics: [accuracy]}
          - {name: b, data: PKG, metrics: [accuracy, macro_f1, acc]}
        """,
        "key tasks[1].metrics[2]",
        "Expected one of accuracy, macro_f1",
    ),
    (
        "name: demo\ntasks:\n  - {name: a, data: PKG, metrix: [accuracy]}\n",
        "key tasks[0].metrix",
        "Expected one of name, data",
    ),
    (
        "name: demo\ntasks:\n  - {name: a, data: PKG}\n",
        "key tasks[0].metrics",
        "non-empty list of metric names",
    ),
    (
        "name: demo\ntasks:\n  - {name: a, data: PKG, metrics: [accuracy], latency: yes please}\n",
        "key tasks[0].latency",
        "Expected true or false",
    ),
    (
        "name: demo\ntasks:\n  - {name: a, data: PKG, metrics: [accuracy], max_examples: 0}\n",
        "key tasks[0].max_examples",
        "positive whole number",
    ),
    (
        """
        name: demo
        tasks:
          - name: a
            data: PKG
            metrics: [accuracy]
            slices:
              - {by: text_length, bins: [40, 10]}
        """,
        "key tasks[0].slices[0].bins",
        "increasing whole numbers",
    ),
    (
        """
        name: demo
        tasks:
          - name: a
            data: PKG
            metrics: [accuracy]
            slices: [{by: sentiment}]
        """,
        "key tasks[0].slices[0].by",
        "one of ('text_length', 'column')",
    ),
    (
        "name: demo\ntasks:\n  - {name: a, data: missing.csv, metrics: [accuracy]}\n",
        "key tasks[0].data",
        "an existing file",
    ),
    (
        "name: demo\ntasks:\n  - {name: a, data: 'package:no/such.csv', metrics: [accuracy]}\n",
        "key tasks[0].data",
        "package:sample_data/support_intents_test.csv",
    ),
    (
        "name: demo\ntasks:\n  - {name: a, data: PKG, metrics: [roc_auc], label_names: [a, b, c]}",
        "key tasks[0].metrics[0]",
        "any number of labels",
    ),
    (
        "name: demo\ntasks:\n  - {name: a, data: PKG, metrics: [accuracy], label_names: [a, a]}\n",
        "key tasks[0].label_names",
        "each label named once",
    ),
    (
        """
        name: demo
        tasks:
          - {name: a, data: PKG, metrics: [accuracy]}
          - {name: a, data: PKG, metrics: [accuracy]}
        """,
        "key tasks[1].name",
        "unique names",
    ),
]


@pytest.mark.parametrize(("body", "key", "expected"), INVALID)
def test_validation_errors_name_file_line_key_and_expectation(tmp_path, body, key, expected):
    path = write_suite(tmp_path, body.replace("PKG", SAMPLE))
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    message = str(caught.value)
    assert f"Suite file {path}, line " in message
    assert f"{key}:" in message
    assert expected in message


def test_the_line_points_at_the_offending_metric(tmp_path):
    path = write_suite(
        tmp_path,
        f"""
        name: demo
        tasks:
          - name: intents
            data: {SAMPLE}
            metrics:
              - accuracy
              - f2
        """,
    )
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    line = path.read_text().splitlines().index("      - f2") + 1
    assert line == 7
    assert f"line {line}, key tasks[0].metrics[1]: unknown metric 'f2'" in str(caught.value)


def test_invalid_yaml_names_the_line(tmp_path):
    path = write_suite(tmp_path, "name: demo\ntasks:\n  - name: [unclosed\n")
    with pytest.raises(SuiteError, match=r"line \d+ is not valid YAML"):
        load_suite(path)


def test_an_unknown_suite_lists_the_bundled_ones():
    with pytest.raises(SuiteError) as caught:
        load_suite("no-such-suite")
    assert "support_intents" in caught.value.fix


def test_a_missing_column_is_reported_with_the_columns_there(tmp_path):
    path = write_suite(tmp_path, minimal("    text_column: message"))
    suite = load_suite(path)
    with pytest.raises(SuiteError) as caught:
        check_suite_data(suite)
    message = str(caught.value)
    assert "key tasks[0].text_column" in message and "no column 'message'" in message
    assert "'text', 'label'" in message


def test_a_missing_slice_column_is_reported(tmp_path):
    path = write_suite(tmp_path, minimal("    slices: [{by: column, column: channel}]"))
    with pytest.raises(SuiteError, match=r"key tasks\[0\]\.slices\[0\]: .*no column 'channel'"):
        check_suite_data(load_suite(path))


def test_labels_outside_the_suites_label_names_are_an_error(tmp_path):
    path = write_suite(tmp_path, minimal("    label_names: [billing, refund]"))
    with pytest.raises(SuiteError, match="not among the given label names") as caught:
        check_suite_data(load_suite(path))
    assert "key tasks[0].data" in str(caught.value)


def test_roc_auc_on_a_multi_class_data_set_is_refused_before_any_model(tmp_path):
    path = write_suite(tmp_path, minimal().replace("[accuracy]", "[accuracy, roc_auc]"))
    with pytest.raises(
        SuiteError, match=r"tasks\[0\]\.metrics\[1\]: roc_auc is defined for binary"
    ):
        check_suite_data(load_suite(path))


def test_binary_data_accepts_roc_auc(tmp_path):
    (tmp_path / "pairs.csv").write_text("text,label\na,yes\nb,no\nc,yes\n", encoding="utf-8")
    path = write_suite(tmp_path, minimal(data="pairs.csv").replace("[accuracy]", "[roc_auc]"))
    (data,) = check_suite_data(load_suite(path))
    assert data.label_names == ["no", "yes"] and np.array_equal(data.references, [1, 0, 1])


def test_a_hub_dataset_offline_fails_fast_and_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = write_suite(tmp_path, minimal(data="someorg/tickets"))
    suite = load_suite(path)
    assert suite.tasks[0].source == "someorg/tickets"
    started = time.perf_counter()
    with pytest.raises(SuiteError, match="Hub is offline") as caught:
        check_suite_data(suite)
    assert time.perf_counter() - started < 2
    assert "key tasks[0].data" in str(caught.value)


def test_a_hub_metric_offline_is_an_unknown_metric(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = write_suite(tmp_path, minimal().replace("[accuracy]", "[accuracy, bertscore]"))
    with pytest.raises(SuiteError, match=r"tasks\[0\]\.metrics\[1\]: unknown metric 'bertscore'"):
        load_suite(path)
