"""Test tiers: a test file that trains carries the `training` marker, so `make test-fast` (which
deselects it) stays fast. A file trains when it calls finetune, run_template, papermill or a
Trainer, runs `transferlab run`/`sweep` (in process or as a command), or uses the session's
tiny_run fixture; it then marks the whole module (pytestmark) or the tests that train."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
TRAINING_CALLS = {"finetune", "run_template", "execute_notebook", "Trainer", "train"}
TRAINING_FIXTURES = {"tiny_run"}
CLI_COMMANDS = {"run", "sweep"}


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _cli_command(items: list[ast.expr]) -> str | None:
    """`run finetune` in a command line: run_cli("run", "finetune"), ["run", "finetune", ...]."""
    texts = [i.value if isinstance(i, ast.Constant) else "..." for i in items]
    for command, argument in zip(texts, texts[1:], strict=False):
        if command in CLI_COMMANDS:
            return f"{command} {argument}"
    return None


def training_reasons(tree: ast.AST) -> list[str]:
    """What in a test module trains, by line: calls, command lines and fixture parameters."""
    reasons = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _called_name(node) in TRAINING_CALLS:
            reasons.append(f"line {node.lineno}: {_called_name(node)}(...)")
        items = node.args if isinstance(node, ast.Call) else getattr(node, "elts", None)
        if isinstance(node, (ast.Call, ast.List, ast.Tuple)) and _cli_command(items):
            reasons.append(f"line {node.lineno}: transferlab {_cli_command(items)}")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for argument in node.args.args:
                if argument.arg in TRAINING_FIXTURES:
                    reasons.append(f"line {node.lineno}: fixture {argument.arg}")
    return reasons


def marks_training(tree: ast.AST) -> bool:
    """Whether the module uses pytest.mark.training anywhere (pytestmark or a decorator)."""
    return any(
        isinstance(node, ast.Attribute)
        and node.attr == "training"
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "mark"
        for node in ast.walk(tree)
    )


def test_the_check_finds_training_and_its_marker():
    trains = ast.parse("def test_a(tiny_run):\n    run_template('finetune', {})\n")
    assert training_reasons(trains) == ["line 1: fixture tiny_run", "line 2: run_template(...)"]
    assert not marks_training(trains)
    marked = ast.parse("import pytest\npytestmark = [pytest.mark.training]\n")
    assert marks_training(marked)
    cli = ast.parse("def test_b(run_cli):\n    run_cli('run', 'finetune')\n    run_cli('show')\n")
    assert training_reasons(cli) == ["line 2: transferlab run finetune"]
    command = ast.parse("subprocess.run([exe, 'run', 'finetune'])\nsubprocess.run([exe, 'show'])")
    assert training_reasons(command) == ["line 1: transferlab run finetune"]


@pytest.mark.parametrize("path", sorted(TESTS.glob("test_*.py")), ids=lambda path: path.name)
def test_a_test_file_that_trains_is_marked_training(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    reasons = training_reasons(tree)
    assert not reasons or marks_training(tree), (
        f"{path.name} trains ({'; '.join(reasons[:3])}) but no test in it is marked "
        "@pytest.mark.training (or pytestmark = [pytest.mark.training]): make test-fast runs it"
    )
