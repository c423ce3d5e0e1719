"""The shared model layer: pooling read from a folder, frozen embeddings, the standard probe and
the pooled classifier (Trainer + LoRA, save, reload), on tiny random BERTs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from transferlab.errors import ModelSourceError
from transferlab.models.embedding import embed, embed_folder, load_encoder
from transferlab.models.heads import HEAD_CONFIG, HEAD_FILE, PooledClassifier
from transferlab.models.pooling import DEFAULT_POOLING, Pooling, pool, pooling_of
from transferlab.models.probe import CS, fit_probe, probe_folds, probe_head_weights

TEXTS = [
    "refund my order please",
    "the parcel is late again",
    "hi",
    "where is my package, it was due on monday and nothing has arrived yet",
    "money back",
    "tracking number does not work",
]


def write_st_config(folder: Path, pooling: dict, normalize: bool = True) -> Path:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    if normalize:
        modules.append(
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
        (folder / "2_Normalize").mkdir(exist_ok=True)
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return folder


@pytest.fixture(scope="module")
def tiny_st_dir(tmp_path_factory, tiny_bert_dir) -> Path:
    """The tiny BERT as a sentence-transformers folder: mean pooling, then Normalize."""
    folder = tmp_path_factory.mktemp("tiny-st") / "model"
    shutil.copytree(tiny_bert_dir, folder)
    config = {"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True}
    return write_st_config(folder, config)


# -- pooling ----------------------------------------------------------------------------------


def test_pooling_is_read_from_sentence_transformers_folders_only(
    minilm_dir, tiny_bert_dir, tiny_st_dir, tmp_path
):
    minilm = pooling_of(minilm_dir)
    assert (minilm.mode, minilm.normalize) == ("mean", True) and not minilm.is_fallback
    assert pooling_of(tiny_bert_dir) is None  # a plain encoder keeps its usual head
    assert pooling_of(tiny_st_dir) == Pooling(
        "mean", True, "sentence-transformers: 1_Pooling/config.json"
    )
    assert DEFAULT_POOLING.is_fallback and "assumed" in DEFAULT_POOLING.describe()

    newer = write_st_config(tmp_path, {"pooling_mode": "cls", "include_prompt": True}, False)
    assert (pooling_of(newer).mode, pooling_of(newer).normalize) == ("cls", False)
    (tmp_path / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True, "pooling_mode_max_tokens": True})
    )
    assert pooling_of(tmp_path).mode == "cls+max"
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "median"}))
    with pytest.raises(ModelSourceError, match="median"):
        pooling_of(tmp_path)


def test_pool_modes_against_hand_computed_values():
    hidden = torch.tensor(
        [
            [[1.0, 2.0], [3.0, -4.0], [5.0, 6.0]],  # three real tokens
            [[2.0, 0.0], [4.0, 8.0], [9.0, 9.0]],  # two real tokens, one pad (9, 9)
        ]
    )
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])

    def run(mode: str, normalize: bool = False) -> np.ndarray:
        return pool(hidden, mask, Pooling(mode, normalize, "test")).numpy()

    assert np.allclose(run("mean"), [[3.0, 4.0 / 3], [3.0, 4.0]])
    assert np.allclose(run("cls"), [[1.0, 2.0], [2.0, 0.0]])
    assert np.allclose(run("max"), [[5.0, 6.0], [4.0, 8.0]])
    assert np.allclose(run("lasttoken"), [[5.0, 6.0], [4.0, 8.0]])
    assert np.allclose(
        run("mean_sqrt_len_tokens"), [[9 / 3**0.5, 4 / 3**0.5], [6 / 2**0.5, 8 / 2**0.5]]
    )
    # weights 1, 2, 3 by position: (1*1 + 2*3 + 3*5) / 6 and (1*2 + 2*-4 + 3*6) / 6
    assert np.allclose(run("weightedmean"), [[22 / 6, 12 / 6], [10 / 3, 16 / 3]])
    assert np.allclose(run("mean", normalize=True), [[0.9138, 0.4061], [0.6, 0.8]], atol=1e-4)
    assert np.allclose(run("cls+max"), [[1.0, 2.0, 5.0, 6.0], [2.0, 0.0, 4.0, 8.0]])
    left = pool(hidden, torch.tensor([[1, 1, 1], [0, 1, 1]]), Pooling("cls", False, "t"))
    assert left.tolist()[1] == [4.0, 8.0]  # left padding: the first real token


def test_pool_matches_sentence_transformers_pooling_module():
    from sentence_transformers.sentence_transformer.modules import Pooling as STPooling

    torch.manual_seed(0)
    hidden = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    for mode in ("mean", "cls", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"):
        theirs = STPooling(4, pooling_mode=mode)(
            {"token_embeddings": hidden, "attention_mask": mask}
        )["sentence_embedding"]
        ours = pool(hidden, mask, Pooling(mode, False, "test"))
        assert torch.allclose(ours, theirs, atol=1e-6), mode


# -- embeddings -------------------------------------------------------------------------------


def test_embeddings_match_sentence_transformers_in_the_callers_order(tiny_st_dir):
    from sentence_transformers import SentenceTransformer

    result = embed_folder(tiny_st_dir, TEXTS, batch_size=2, threads=1)
    assert result.vectors.shape == (len(TEXTS), 32) and result.vectors.dtype == np.float32
    assert not result.pooling.is_fallback and result.max_length == 128
    reference = SentenceTransformer(str(tiny_st_dir), device="cpu").encode(TEXTS)
    assert np.allclose(result.vectors, reference, atol=1e-5)
    assert np.allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)


def test_a_plain_encoder_falls_back_to_mean_pooling_and_says_so(tiny_bert_dir):
    encoder = load_encoder(tiny_bert_dir, max_length=512)
    assert encoder.pooling is DEFAULT_POOLING and encoder.max_length == 128  # its positions
    together = embed(encoder, TEXTS, batch_size=4)
    alone = np.vstack([embed(encoder, [text]) for text in TEXTS])
    assert np.allclose(together, alone, atol=1e-5)  # sorting and per-batch padding changed nothing
    assert not np.allclose(np.linalg.norm(together, axis=1), 1.0)


# -- the standard probe -----------------------------------------------------------------------


def _blobs(per_class: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, 16))
    labels = np.repeat(np.arange(classes), per_class)
    return centres[labels] + rng.normal(scale=1.0, size=(len(labels), 16)), labels


def test_probe_chooses_c_by_stratified_cv_and_is_deterministic():
    x, y = _blobs(8, 3)
    probe = fit_probe(x, y, seed=1)
    assert probe.folds == 5 and probe.C in CS and set(probe.cv_accuracy) == set(CS)
    assert "5-fold" in probe.note
    again = fit_probe(x, y, seed=1)
    assert again.C == probe.C and np.array_equal(again.classifier.coef_, probe.classifier.coef_)
    assert probe_folds([0, 0, 0, 1, 1, 1, 1]) == 3 and probe_folds([0, 1, 1]) == 0
    proba = probe.predict_proba(x)
    logits = probe.logits(x)
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    assert np.allclose(softmax / softmax.sum(1, keepdims=True), proba, atol=1e-6)


def test_probe_with_one_example_per_class_uses_c_1_without_cv():
    x, y = _blobs(1, 4)
    probe = fit_probe(x, y)
    assert probe.C == 1.0 and probe.folds == 0 and "single example" in probe.note
    assert probe.cv_accuracy == {}


def test_binary_probe_head_weights_reproduce_its_probabilities():
    x, y = _blobs(6, 2, seed=3)
    probe = fit_probe(x, y)
    weight, bias = probe_head_weights(probe)
    assert weight.shape == (2, 16) and bias.shape == (2,) and weight.dtype == np.float32
    logits = probe.features(x) @ weight.T + bias
    p1 = 1 / (1 + np.exp(logits[:, 0] - logits[:, 1]))
    assert np.allclose(p1, probe.predict_proba(x)[:, 1], atol=1e-5)


# -- the pooled classifier --------------------------------------------------------------------


def _batch(tokenizer, texts):
    return tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")


def test_head_started_from_the_probe_predicts_what_the_probe_does(tiny_st_dir):
    labels = np.array([0, 1, 2, 0, 1, 2])
    encoder = load_encoder(tiny_st_dir)
    probe = fit_probe(embed(encoder, TEXTS), labels)
    model = PooledClassifier.from_pretrained(tiny_st_dir, 3).eval()
    assert model.pooling == encoder.pooling and model.classifier.weight.abs().sum() == 0
    model.init_from_probe(*probe_head_weights(probe))
    with torch.inference_mode():
        logits = model(**_batch(encoder.tokenizer, TEXTS)).logits.numpy()
    assert np.allclose(logits, probe.logits(embed(encoder, TEXTS)), atol=1e-4)
    with pytest.raises(ValueError, match="do not fit"):
        model.init_from_probe(np.zeros((2, 32)), np.zeros(2))


@pytest.mark.training
def test_lora_trains_it_with_the_trainer_and_a_reload_gives_the_same_logits(tiny_st_dir, tmp_path):
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, Trainer, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(tiny_st_dir)
    names = ["money", "post"]
    torch.manual_seed(0)
    model = PooledClassifier.from_pretrained(tiny_st_dir, 2, label_names=names)
    config = LoraConfig(r=4, target_modules=["query", "value"], modules_to_save=["classifier"])
    peft_model = get_peft_model(model, config)
    data = Dataset.from_dict({"text": TEXTS, "label": [0, 1, 1, 1, 0, 1]}).map(
        lambda rows: tokenizer(rows["text"], truncation=True, max_length=32), batched=True
    )
    args = TrainingArguments(
        output_dir=str(tmp_path / "trainer"),
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=5e-2,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        label_names=["labels"],
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=peft_model,
        args=args,
        train_dataset=data.remove_columns(["text"]).rename_column("label", "labels"),
        processing_class=tokenizer,
    )
    before = model.classifier.weight.detach().clone()
    trainer.train()
    assert trainer.state.global_step == 2
    assert not torch.equal(model.classifier.weight.detach(), before)  # the head trained

    folder = tmp_path / "run"
    peft_model.save_pretrained(folder)  # the method's part: the adapter
    model.save(folder)  # the head and its config
    assert (folder / HEAD_FILE).is_file() and (folder / HEAD_CONFIG).is_file()
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt"))
    assert json.loads((folder / HEAD_CONFIG).read_text())["label_names"] == names

    batch = _batch(tokenizer, TEXTS)
    peft_model.eval()
    with torch.inference_mode():
        expected = peft_model(**batch).logits
        reloaded = PooledClassifier.load(folder, tiny_st_dir).eval()
        merged = PooledClassifier.load(folder, tiny_st_dir, merge=True).eval()
        assert torch.allclose(reloaded(**batch).logits, expected, atol=1e-5)
        assert torch.allclose(merged(**batch).logits, expected, atol=1e-5)
    assert isinstance(merged, PooledClassifier) and merged.label_names == names

    labels = torch.tensor([0, 1, 1, 1, 0, 1])
    output = merged(**batch, labels=labels)
    expected_loss = torch.nn.functional.cross_entropy(output.logits, labels)
    assert torch.allclose(output.loss, expected_loss)


def test_a_fully_fine_tuned_encoder_reloads_from_its_own_folder(tiny_bert_dir, tmp_path):
    model = PooledClassifier.from_pretrained(tiny_bert_dir, 3).eval()
    assert model.pooling is DEFAULT_POOLING  # a plain encoder: mean pooling, said so
    torch.nn.init.normal_(model.classifier.weight)
    model.encoder.save_pretrained(tmp_path)  # the method's part: the full encoder
    model.save(tmp_path)
    reloaded = PooledClassifier.load(tmp_path).eval()
    from transformers import AutoTokenizer

    batch = _batch(AutoTokenizer.from_pretrained(tiny_bert_dir), TEXTS)
    with torch.inference_mode():
        assert torch.allclose(reloaded(**batch).logits, model(**batch).logits, atol=1e-5)
    with pytest.raises(ModelSourceError, match="head.json"):
        PooledClassifier.load(tiny_bert_dir)
