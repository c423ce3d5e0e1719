"""Padding strategies for LoRA training of MiniLM on SST-2: speed, padding share, accuracy.

    .venv/bin/python benchmarks/padding.py [--sentences 2000] [--steps 125] [--repeats 3]
        [--threads 2] [--out benchmarks/results/padding.json]

Four ways to batch the same examples, each trained for the same number of steps with the same
LoRA settings (r=8/alpha 16/dropout 0.1 on query,value, batch 16, lr 2e-3, 6 % warmup) by a
transformers Trainer:

    fixed-64      every example padded (and truncated) to 64 tokens
    fixed-128     every example padded to 128 tokens (the project's default max_length)
    dynamic       padded to the longest example of its batch (DataCollatorWithPadding),
                  truncated at 128
    dynamic+group per-batch padding with length-grouped sampling (group_by_length), truncated
                  at 128

Training data: a stratified sample of --sentences sentences of ../shared/data/sst2/train.csv
(seed 0). Accuracy: the full SST-2 validation set (872 sentences), always evaluated with
per-batch padding (padding does not change a prediction, only the cost). Repeat i uses
training seed i for every strategy, so accuracy is compared seed for seed; the strategy order
rotates every repeat. Before each run it waits (up to --wait-quiet s) for other processes to
use under 10 % of the CPUs and records the share they took during the run ("other%").
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_common as bc

SST2 = bc.SHARED_DATA / "sst2"
EVAL_MAX_LENGTH = 128
QUIET_THRESHOLD = 0.15  # other processes' share of the CPUs above which a run's speed is unfair


@dataclass(frozen=True)
class Strategy:
    name: str
    max_length: int
    fixed: bool
    group_by_length: bool


STRATEGIES = (
    Strategy("fixed-64", 64, fixed=True, group_by_length=False),
    Strategy("fixed-128", 128, fixed=True, group_by_length=False),
    Strategy("dynamic", 128, fixed=False, group_by_length=False),
    Strategy("dynamic+group", 128, fixed=False, group_by_length=True),
)


def load_data(sentences: int) -> tuple[Any, Any]:
    from transferlab.data import load_labelled_data, sample_few_shot

    train = load_labelled_data(SST2 / "train.csv")
    validation = load_labelled_data(SST2 / "validation.csv")
    return sample_few_shot(train, n_train=sentences, seed=0), validation


def encode(tokenizer: Any, data: Any, strategy: Strategy) -> Any:
    import datasets

    encoded = tokenizer(
        list(data.texts),
        truncation=True,
        max_length=strategy.max_length,
        padding="max_length" if strategy.fixed else False,
    )
    columns = {key: list(values) for key, values in encoded.items()}
    columns["labels"] = list(data.labels)
    return datasets.Dataset.from_dict(columns)


def truncated_share(tokenizer: Any, texts: list[str], max_length: int) -> float:
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    return sum(n > max_length for n in lengths) / len(lengths)


def train_once(
    strategy: Strategy, seed: int, train: Any, validation: Any, args: argparse.Namespace
) -> dict[str, Any]:
    from transformers import (
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    model_dir = bc.minilm_dir()
    set_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = bc.build_lora_model(model_dir, len(train.label_names))
    dataset = encode(tokenizer, train, strategy)
    counter = bc.TokenCounter(DataCollatorWithPadding(tokenizer))
    with tempfile.TemporaryDirectory(prefix="bench-padding-") as scratch:
        training_args = TrainingArguments(
            output_dir=scratch,
            per_device_train_batch_size=args.batch_size,
            max_steps=args.steps,
            learning_rate=bc.LORA_LEARNING_RATE,
            weight_decay=bc.WEIGHT_DECAY,
            warmup_steps=bc.WARMUP_RATIO,
            lr_scheduler_type="linear",
            logging_strategy="no",
            eval_strategy="no",
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            use_cpu=True,
            dataloader_pin_memory=False,
            seed=seed,
            data_seed=seed,
            train_sampling_strategy="group_by_length" if strategy.group_by_length else "random",
        )
        trainer = Trainer(
            model=model, args=training_args, train_dataset=dataset, data_collator=counter
        )
        with bc.stopwatch() as clock:
            trainer.train()
    trained = counter.trained_examples(trainer.state.global_step)
    with bc.stopwatch() as eval_clock:
        scores = bc.evaluate_accuracy(
            model, tokenizer, validation.texts, validation.labels, EVAL_MAX_LENGTH
        )
    return {
        "strategy": strategy.name,
        "seed": seed,
        "train_s": clock["s"],
        "samples_per_s": trained / clock["s"],
        "examples_trained": trained,
        "steps": trainer.state.global_step,
        "padding_share": counter.padding_share,
        "mean_batch_length": counter.mean_batch_length,
        "eval_s": eval_clock["s"],
        **scores,
    }


def is_quiet(run: dict[str, Any]) -> bool:
    return run["cpu_share"]["other_share_of_cpus"] <= QUIET_THRESHOLD


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Accuracy over every seed; speed over the runs other work did not slow (other processes
    under QUIET_THRESHOLD of the CPUs), or over every run when none was quiet."""
    rows = []
    for strategy in STRATEGIES:
        mine = [r for r in runs if r["strategy"] == strategy.name]
        if not mine:
            continue
        timed = [r for r in mine if is_quiet(r)] or mine
        speed = bc.mean_std([r["samples_per_s"] for r in timed])
        accuracy = bc.mean_std([r["accuracy"] for r in mine])
        f1 = bc.mean_std([r["macro_f1"] for r in mine])
        rows.append(
            {
                "strategy": strategy.name,
                "runs": len(mine),
                "timed_runs": len(timed),
                "timed_runs_quiet": timed is not mine or all(is_quiet(r) for r in mine),
                "samples_per_s": speed[0],
                "samples_per_s_std": speed[1],
                "padding_share": bc.mean_std([r["padding_share"] for r in mine])[0],
                "mean_batch_length": bc.mean_std([r["mean_batch_length"] for r in mine])[0],
                "accuracy": accuracy[0],
                "accuracy_std": accuracy[1],
                "macro_f1": f1[0],
                "macro_f1_std": f1[1],
            }
        )
    reference = next((r["samples_per_s"] for r in rows if r["strategy"] == "fixed-128"), None)
    for row in rows:
        row["speedup_vs_fixed_128"] = row["samples_per_s"] / reference if reference else None
    return rows


def print_report(runs: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    print("\nPer run")
    print(
        bc.format_table(
            ["strategy", "seed", "train_s", "samples/s", "pad share", "mean len", "acc", "F1"]
            + ["other%"],
            [
                [
                    r["strategy"],
                    r["seed"],
                    round(r["train_s"], 1),
                    round(r["samples_per_s"], 1),
                    round(r["padding_share"], 3),
                    round(r["mean_batch_length"], 1),
                    round(r["accuracy"], 4),
                    round(r["macro_f1"], 4),
                    round(100 * r["cpu_share"]["other_share_of_cpus"]),
                ]
                for r in runs
            ],
        )
    )
    print(
        f"\nSummary: accuracy mean ± std over all seeds; samples/s over the quiet runs (other "
        f"processes <= {QUIET_THRESHOLD:.0%} of the CPUs), 'timed' of them"
    )
    print(
        bc.format_table(
            ["strategy", "timed", "samples/s", "±", "x fixed-128", "pad share", "mean len"]
            + ["acc", "±", "macro-F1"],
            [
                [
                    r["strategy"],
                    r["timed_runs"],
                    round(r["samples_per_s"], 1),
                    round(r["samples_per_s_std"], 1),
                    round(r["speedup_vs_fixed_128"] or 0.0, 2),
                    round(r["padding_share"], 3),
                    round(r["mean_batch_length"], 1),
                    round(r["accuracy"], 4),
                    round(r["accuracy_std"], 4),
                    round(r["macro_f1"], 4),
                ]
                for r in rows
            ],
        )
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=125, help="default: one epoch of 2,000")
    parser.add_argument("--repeats", type=int, default=3, help="seeds 0..repeats-1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--wait-quiet", type=float, default=60.0, help="max s to wait for a quiet machine"
    )
    parser.add_argument("--out", type=Path, default=bc.RESULTS_DIR / "padding.json")
    parser.add_argument(
        "--report-only", action="store_true", help="re-print (and re-summarise) --out, no runs"
    )
    return parser.parse_args(argv)


def report_only(path: Path) -> None:
    payload = json.loads(path.read_text(encoding="utf-8"))
    payload["summary"] = summarise(payload["runs"])
    print(f"{path}: {payload['settings']}")
    print_report(payload["runs"], payload["summary"])
    bc.write_json(path, payload)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.report_only:
        report_only(args.out)
        return
    if not SST2.is_dir():
        print(f"SKIPPED: {SST2} is absent (the shared data sets are not on this machine).")
        return
    bc.set_threads(args.threads)
    info = bc.machine_info(args.threads)
    started = time.perf_counter()
    train, validation = load_data(args.sentences)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(bc.minilm_dir())
    truncation = {n: truncated_share(tokenizer, list(train.texts), n) for n in (64, 128)}
    print(
        f"SST-2: {len(train)} training sentences (stratified, seed 0), {len(validation)} "
        f"validation; {args.steps} steps x batch {args.batch_size}; {args.threads} threads; "
        f"truncated at 64: {truncation[64]:.2%}, at 128: {truncation[128]:.2%}; "
        f"load {info['load_at_start']['loadavg_1m']}",
        flush=True,
    )
    runs: list[dict[str, Any]] = []
    for seed in range(args.repeats):
        shift = seed % len(STRATEGIES)
        for strategy in STRATEGIES[shift:] + STRATEGIES[:shift]:
            waited = bc.wait_for_quiet(args.wait_quiet)
            before = bc.load_snapshot()
            with bc.cpu_share() as share:
                result = train_once(strategy, seed, train, validation, args)
            result.update(
                load_before=before, cpu_share=share.as_dict(), waited_for_quiet_s=round(waited, 1)
            )
            runs.append(result)
            print(
                f"  seed {seed} {strategy.name:14s} {result['samples_per_s']:7.1f} samples/s  "
                f"padding {result['padding_share']:.3f}  accuracy {result['accuracy']:.4f}  "
                f"(other processes {share.other_share:.0%} of CPUs)",
                flush=True,
            )
    rows = summarise(runs)
    print_report(runs, rows)
    payload = {
        "benchmark": "padding",
        "settings": {
            "sentences": len(train),
            "steps": args.steps,
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "threads": args.threads,
            "eval": f"SST-2 validation ({len(validation)}), per-batch padding, max_length 128",
            "truncated_share": truncation,
        },
        "machine": {**info, "load_at_end": bc.load_snapshot()},
        "summary": rows,
        "runs": runs,
        "elapsed_s": time.perf_counter() - started,
    }
    bc.write_json(args.out, payload)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
