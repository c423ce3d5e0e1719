"""`transferlab card`: Hugging Face style model cards from registry facts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.test_promotion import BASE, BASE_HUB_ID, LABELS, MODEL, SUITE, add_benchmark
from tests.test_promotion import build_registry as build_promotion_registry
from transferlab import ModelRecord, Registry

RUN_PARAMETERS = {
    "method": "lora",
    "base": f"{BASE}:1",
    "dataset": "support_intents",
    "learning_rate": 0.0005,
    "epochs": 3,
    "batch_size": 16,
    "lora_r": 8,
    "lora_alpha": 16,
    "target_modules": ["query", "value"],
    "seed": 0,
    "data": {"splits": {"train": {"examples": 320}, "test": {"examples": 105}}},
}

# The card's shape, section by section (like setfit's checks of its generated cards).
CARD_PATTERN = re.compile(
    r"^---\n.+?\n---\n\n"
    r"# intents-lora:1\n\nLoRA fine-tune of minilm for support intents\.\n\n"
    r"\| \| \|\n\|---\|---\|\n"
    r"\| Registry version \| `intents-lora:1` \(adapter\) \|\n"
    r"\| Task \| text-classification \|\n"
    r"\| Base model \| `sentence-transformers/all-MiniLM-L6-v2` \|\n"
    r"\| Licence \| apache-2\.0 \(from minilm\); allows commercial use \|\n"
    r"\| Aliases \| staging \|\n.*?"
    r"## Lineage\n\n1\. `intents-lora:1`: adapter, `[^`]+`, made by run `finetune-[^`]+`\n"
    r"2\. `minilm:1`: base, `hf://sentence-transformers/all-MiniLM-L6-v2`\n\n"
    r"## Training\n\nMade by run `finetune-\S+` \(finetune, succeeded, .+?\)\.\n\n"
    r"\| parameter \| value \|\n\|---\|---\|\n\| method \| lora \|\n.*?"
    r"\| target_modules \| query, value \|\n.*?"
    r"Examples per split: train 320, test 105\.\n\nSoftware: python [\d.]+.*?\n\n"
    r"## Evaluation\n\n.+?\n\n"
    r"\| suite \| task \| dataset \| split \| metric \| value \| ± \| seeds \|\n.*?"
    r"\| support_intents \| intents \| support_intents \| test \| accuracy \| 0\.9100 \| "
    r"0\.0141 \| 2 \|\n.*?"
    r"## Labels\n\n\| id \| label \|\n\|---\|---\|\n\| 0 \| account_access \|\n.*?"
    r"## Intended use and limitations\n\n.+?"
    r"## How to load\n\n.*?transferlab predict intents-lora:1 .*?"
    r"PeftModel\.from_pretrained\(base, \"[^\"]+\"\).*```\n$",
    re.DOTALL,
)


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


@pytest.fixture
def trained(registry: Registry, tmp_path: Path) -> Registry:
    """intents-lora:1 as a fine-tuning run leaves it: a folder with transferlab.json, the run,
    its own evaluation and a benchmark on the suite."""
    folder = tmp_path / "outputs" / "intents-lora"
    folder.mkdir(parents=True)
    (folder / "transferlab.json").write_text("{}")
    reg = build_promotion_registry(registry, versions=0, uri=folder)
    run_id = reg.start_run("finetune", parameters=RUN_PARAMETERS)
    reg.add_version(
        MODEL,
        "adapter",
        str(folder),
        parent_version_id=f"{BASE}:1",
        run_id=run_id,
        label_names=LABELS,
        metadata={"method": "lora", "adapter_format": "peft", "base_uri": f"hf://{BASE_HUB_ID}"},
    )
    reg.add_results(
        [
            {"run_id": run_id, "version_id": f"{MODEL}:1", "suite": None,
             "task": "text-classification", "dataset": "support_intents", "split": "validation",
             "metric": metric, "value": value, "n_train": 320, "seed": 0}
            for metric, value in (("accuracy", 0.875), ("macro_f1", 0.86))
        ]
        + [
            {"run_id": run_id, "version_id": f"{MODEL}:1", "suite": None,
             "task": "text-classification", "dataset": "support_intents", "split": split,
             "metric": "accuracy", "value": value, "n_train": 320, "seed": 0}
            for split, value in (("train", 0.99), ("test", 0.5))
        ]
    )  # fmt: skip
    reg.finish_run(run_id, "succeeded")
    add_benchmark(reg, f"{MODEL}:1", {"accuracy": [0.90, 0.92], "macro_f1": [0.89, 0.91]})
    add_benchmark(
        reg,
        f"{MODEL}:1",
        {
            "f1[label=billing]": [0.8],
            "precision[label=billing]": [0.7],
            "f1[label=refund]": [0.9],
            "accuracy[text_length=0-70]": [0.85],
            "latency_ms_p50": [3.5],
        },
    )
    add_benchmark(reg, f"{MODEL}:1", {"accuracy": [0.10]}, status="failed")
    reg.set_alias(f"{MODEL}:1", "staging")
    return reg


def test_card_lands_in_the_version_folder_with_registry_values(trained, run_cli):
    code, out, err = run_cli("card", f"{MODEL}:1", "--registry", trained.location)
    assert code == 0, err
    folder = Path(trained.resolve(f"{MODEL}:1").uri)
    assert out.strip() == f"wrote the model card of {MODEL}:1 to {folder / 'README.md'}"
    text = (folder / "README.md").read_text()
    matter = _front_matter(text)
    assert matter["base_model"] == BASE_HUB_ID
    assert matter["license"] == trained.get_model(BASE)["license"] == "apache-2.0"
    assert matter["language"] == ["en"]
    assert matter["library_name"] == "peft" and matter["pipeline_tag"] == "text-classification"
    assert {"transferlab", "adapter", "lora", "peft", "fine-tuned"} <= set(matter["tags"])
    (entry,) = matter["model-index"]
    assert entry["name"] == MODEL
    found = {
        (r["dataset"]["split"], m["type"]): m["value"]
        for r in entry["results"]
        for m in r["metrics"]
    }
    # Overall metrics only; the suite's test accuracy wins over the fine-tuning run's 0.5, the
    # failed run's 0.10 is left out, and training-split scores are no evaluation.
    assert found == {
        ("test", "accuracy"): 0.91,
        ("test", "macro_f1"): 0.9,
        ("validation", "accuracy"): 0.875,
        ("validation", "macro_f1"): 0.86,
    }
    for result in entry["results"]:
        assert result["task"] == {"type": "text-classification", "name": "Text Classification"}
        assert result["dataset"]["name"] == "support_intents"
    assert CARD_PATTERN.match(text), text


def test_the_hub_reads_the_card_metadata(trained):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    from transferlab.card import render_card

    card = huggingface_hub.ModelCard(render_card(trained, f"{MODEL}@staging"))
    assert card.data.base_model == BASE_HUB_ID and card.data.license == "apache-2.0"
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results[("test", "accuracy")] == 0.91


def test_card_of_a_base_model_without_a_local_folder_goes_to_the_working_directory(
    trained, run_cli, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli("card", f"{BASE}:1", "--registry", trained.location, "--json")
    assert code == 0
    written = json.loads(out)
    assert written == {"version_id": f"{BASE}:1", "path": str(tmp_path / "minilm-card.md")}
    text = Path(written["path"]).read_text()
    matter = _front_matter(text)
    assert "base_model" not in matter  # a root has no base
    assert matter["pipeline_tag"] == "feature-extraction"
    assert matter["library_name"] == "transformers" and "model-index" not in matter
    assert "No results are recorded for this version." in text
    assert "No run that made this version is recorded" in text
    assert f'from_pretrained("{BASE_HUB_ID}")' in text


def test_a_local_root_is_named_by_its_registry_ref_and_its_own_folder_is_left_alone(
    registry, run_cli, tmp_path, monkeypatch
):
    imported = tmp_path / "imported-model"
    imported.mkdir()
    (imported / "README.md").write_text("the original card")
    registry.add_model(
        ModelRecord(name="tiny", source="local", source_ref=str(imported), task="fill-mask")
    )
    registry.add_version("tiny", "base", str(imported))
    registry.add_model(
        ModelRecord(name="tiny-full", source="local", source_ref="x", task="text-classification")
    )
    registry.add_version("tiny-full", "full", None, parent_version_id="tiny:1")
    monkeypatch.chdir(tmp_path)
    assert run_cli("card", "tiny:1", "--registry", registry.location)[0] == 0
    assert (imported / "README.md").read_text() == "the original card"
    assert (tmp_path / "tiny-card.md").is_file()
    code, out, _ = run_cli("card", "tiny-full", "--output", "-", "--registry", registry.location)
    matter = _front_matter(out)
    assert code == 0 and matter["base_model"] == "tiny:1"
    assert "license" not in matter and "Licence | not recorded" in out
    assert "No label names are recorded" in out


def test_output_option_writes_where_asked(trained, run_cli, tmp_path):
    target = tmp_path / "cards" / "intents.md"
    code, _, _ = run_cli("card", f"{MODEL}:1", "--output", target, "--registry", trained.location)
    assert code == 0 and _front_matter(target.read_text())["base_model"] == BASE_HUB_ID
    assert not list(target.parent.glob(".card-*"))  # no temporary file left behind


def test_card_of_an_unknown_version_is_a_clear_error(trained, run_cli):
    code, out, err = run_cli("card", f"{MODEL}:7", "--registry", trained.location)
    assert code == 2 and out == "" and "intents-lora:7 does not name a version" in err


def test_suite_results_and_the_staging_alias_appear_in_the_body(trained, run_cli):
    code, out, _ = run_cli(
        "card", f"{MODEL}@staging", "--output", "-", "--registry", trained.location
    )
    assert code == 0
    assert f"| {SUITE} | intents | support_intents | test | macro_f1 | 0.9000 |" in out
    assert "| - | text-classification | support_intents | validation | accuracy | 0.8750 |" in out
    # Training-split scores are listed in the body but are not results in the model-index.
    assert "| - | text-classification | support_intents | train | accuracy | 0.9900 |" in out
    assert (
        "### Per class: support_intents/intents/test\n\n| label | precision | f1 |\n"
        "|---|---|---|\n| billing | 0.7000 | 0.8000 |\n| refund | - | 0.9000 |"
    ) in out
    assert "### By slice: support_intents/intents/test\n\n| slice | accuracy |" in out
    assert "| text_length=0-70 | 0.8500 |" in out
    assert "| support_intents | intents | latency_ms_p50 | 3.5 |" in out
