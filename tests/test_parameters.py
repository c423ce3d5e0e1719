"""Template parameters are checked against the template's types before any run is recorded;
`transferlab predict` reports a missing file and takes --json anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from tests.conftest import write_template
from transferlab import Registry


def _typed_template(path: Path) -> Path:
    return write_template(
        path,
        "run_id = None\n"
        "registry_path = None\n"
        "count = 3\n"
        "ratio = 0.5\n"
        "label = 'a'\n"
        "flag = True\n"
        "items = ['x']\n"
        "anything = None\n"
        "patience = 2  # None turns it off\n",
        "print(repr((count, ratio, label, flag, items, anything, patience)))",
    )


WRONG_TYPES = [
    ("count", "1.5", "an int"),
    ("count", "true", "an int"),  # a bool is not an int
    ("count", "[1,", "an int"),
    ("ratio", "fast", "a number"),
    ("label", "[a, b]", "a text"),
    ("label", "null", "a text"),  # None only where the default is None or the help says so
    ("flag", "1", "true or false"),
    ("items", "x", "a list"),
]


@pytest.mark.training
def test_values_are_checked_against_the_types_of_the_template_defaults(tmp_path, run_cli):
    template = _typed_template(tmp_path / "typed.ipynb")
    registry = tmp_path / "registry.duckdb"
    for name, text, expected in WRONG_TYPES:
        code, out, err = run_cli("run", template, "-p", name, text, "--registry", registry)
        assert code == 2, (name, text, out + err)
        assert err.startswith("error: Parameter ") and f"{name}=" in err and expected in err
        assert "fix: " in err and f"-p {name} " in err  # an example
        assert "Traceback" not in err
        assert not registry.exists() or Registry(registry).runs() == []  # nothing recorded

    code, out, err = run_cli(
        "run",
        template,
        *("-p", "ratio", "2"),  # a float parameter takes an int
        *("-p", "anything", "[1, two]"),  # a default of None takes anything
        *("-p", "patience", "null"),  # the help comment says None is allowed
        *("-p", "count", "7"),
        *("--registry", registry, "--output-dir", tmp_path / "out", "--json"),
    )
    assert code == 0, out + err
    executed = nbformat.read(json.loads(out)["output_notebook"], as_version=4)
    printed = executed.cells[-1].outputs[0]["text"].strip()
    assert printed == "(7, 2, 'a', True, ['x'], [1, 'two'], None)"


@pytest.mark.parametrize(
    ("arguments", "phrases"),
    [
        (["-p", "max_steps", "[1,"], ["max_steps='[1,'", "an int", "-p max_steps 10"]),
        (["-p", "learning_rate", "fast"], ["learning_rate='fast'", "a number"]),
        (["-p", "seed", "1.5"], ["seed=1.5", "an int"]),
        (["-p", "method", "lorra"], ["Unknown fine-tuning method 'lorra'", "lora"]),
        (["-p", "n_per_class", "0"], ["Invalid n_per_class=0", ">= 1"]),
        (["-p", "n_per_class", "4", "-p", "n_train", "20"], ["Both n_per_class=4 and n_train"]),
    ],
)
def test_the_finetune_template_refuses_bad_values_before_any_run(
    tmp_path, run_cli, arguments, phrases
):
    registry = tmp_path / "registry.duckdb"
    code, out, err = run_cli("run", "finetune", *arguments, "--registry", registry)
    assert code == 2, out + err
    assert "Traceback" not in err and "TypeError" not in err
    for phrase in phrases:
        assert phrase in err, (phrase, err)
    assert not registry.exists() or Registry(registry).runs() == []


def test_predict_reports_a_missing_file_without_a_traceback(tmp_path, run_cli):
    code, out, err = run_cli(
        "predict", "some-model:1", "--file", tmp_path / "missing.txt", "--registry", tmp_path / "r"
    )
    assert code == 2, out + err
    assert err.startswith("error: No file ") and "missing.txt" in err
    assert "Traceback" not in err


@pytest.mark.training
def test_predict_takes_json_before_after_and_between_texts(tiny_run, run_cli):
    _, _, registry = tiny_run
    for arguments in (
        ["tiny-intents:1", "--json", "I was charged twice", "where is my parcel"],
        ["--json", "tiny-intents:1", "I was charged twice", "where is my parcel"],
        ["tiny-intents:1", "I was charged twice", "--json", "where is my parcel"],
    ):
        code, out, err = run_cli("predict", *arguments, "--registry", registry)
        assert code == 0, err
        predicted = json.loads(out)
        assert [p["text"] for p in predicted] == ["I was charged twice", "where is my parcel"]
        assert all(p["label"] for p in predicted)
