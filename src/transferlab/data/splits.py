"""Splits, few-shot samples and fingerprints of labelled data: what a run trains and is
scored on, decided before any model is loaded."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from transferlab.data.labelled import DataSplits, LabelledData, Source, _listing
from transferlab.data.loading import load_labelled_data
from transferlab.errors import DataError

# -- splits, samples, fingerprints ------------------------------------------------------------


def stratified_holdout(
    data: LabelledData, fraction: float, seed: int = 0, max_examples: int | None = None
) -> tuple[LabelledData, LabelledData]:
    """(kept, held out): about `fraction` of each label's examples held out, seeded, and no
    more than `max_examples` in all (the fraction shrinks to fit, classes keep their shares).

    A label keeps at least one example on the kept side; both sides keep the file order.
    """
    if not 0 < fraction < 1:
        raise DataError(
            f"Invalid holdout fraction {fraction}.", "Use a fraction between 0 and 1, e.g. 0.2."
        )
    if max_examples is not None and fraction * len(data) > max_examples:
        fraction = max_examples / len(data)
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for label in range(len(data.label_names)):
        members = np.flatnonzero(np.asarray(data.labels) == label)
        count = min(int(np.floor(fraction * len(members) + 0.5)), len(members) - 1)
        if count > 0:
            held.extend(rng.permutation(members)[:count].tolist())
    held_set = set(held)
    kept = [i for i in range(len(data)) if i not in held_set]
    return (
        data.subset(kept, f"{data.source} (kept after holding out {fraction:g})"),
        data.subset(sorted(held_set), f"{data.source} (held out {fraction:g}, seed {seed})"),
    )


# A validation split held out of a large pool is capped: it is evaluated at every epoch, and
# 10 % of SST-2's 67k training sentences (6.7k) took longer to evaluate than a few-shot run
# takes to train. 500 examples are plenty to pick the best epoch for early stopping.
MAX_HELD_OUT_VALIDATION = 500


def split_data(
    train: LabelledData,
    *,
    validation: LabelledData | None = None,
    test: LabelledData | None = None,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.0,
    seed: int = 0,
) -> DataSplits:
    """Use the given validation/test sets, or hold out stratified fractions of `train`.

    The test set is held out first, then validation (at most MAX_HELD_OUT_VALIDATION examples)
    from what remains. Validation and test labels are renumbered to the training label ids;
    labels that training never has are an error.
    """
    if test is None and test_fraction > 0:
        train, test = stratified_holdout(train, test_fraction, seed)
        _require_examples(test, "test", test_fraction, train)
    if validation is None and validation_fraction > 0:
        train, validation = stratified_holdout(
            train, validation_fraction, seed + 1, max_examples=MAX_HELD_OUT_VALIDATION
        )
        _require_examples(validation, "validation", validation_fraction, train)
    return _aligned(DataSplits(train, validation, test, train.name))


def _require_examples(held: LabelledData, role: str, fraction: float, rest: LabelledData) -> None:
    if not len(held):
        raise DataError(
            f"Holding out {fraction:g} of {rest.source} for {role} leaves no {role} examples "
            f"({len(rest)} examples, at most one per label).",
            f"Give a {role} file, or use more data.",
        )


def _aligned(splits: DataSplits) -> DataSplits:
    seen = splits.train.present_labels()
    for role in ("validation", "test"):
        data = getattr(splits, role)
        if data is None:
            continue
        data = data.with_label_names(splits.label_names, role=role)
        unseen = [name for name in data.present_labels() if name not in seen]
        if unseen:
            raise DataError(
                f"The {role} set {data.source} has labels the training examples never show: "
                f"{_listing(unseen)}.",
                "Train with examples of every label (raise n_per_class or n_train, or use "
                f"more training data), or remove those rows from the {role} set. Labels in "
                f"training: {_listing(seen)}.",
            )
        setattr(splits, role, data)
    return splits


def sample_few_shot(
    data: LabelledData,
    n_per_class: int | None = None,
    n_train: int | None = None,
    seed: int = 0,
) -> LabelledData:
    """A stratified sample: `n_per_class` examples of each label, or `n_train` in all.

    Each label's examples are drawn from its own seeded permutation, so with one seed the
    sample for n=8 is contained in the sample for n=16 (nested data-efficiency curves).
    `n_train` splits the examples in proportion to the label counts, at least one per label.
    """
    if n_per_class is None and n_train is None:
        return data
    if n_per_class is not None and n_train is not None:
        raise DataError(
            f"Both n_per_class={n_per_class} and n_train={n_train} are set.", "Set only one."
        )
    present = Counter(data.labels)
    counts = {label: present[label] for label in sorted(present)}
    if n_per_class is not None:
        if n_per_class < 1:
            raise DataError(f"Invalid n_per_class {n_per_class}.", "Use a positive number.")
        short = {data.label_names[i]: c for i, c in counts.items() if c < n_per_class}
        if short:
            listed = ", ".join(f"{name!r} has {count}" for name, count in short.items())
            raise DataError(
                f"{data.source} has fewer than n_per_class={n_per_class} examples of "
                f"{len(short)} label(s): {listed}.",
                f"Use n_per_class <= {min(short.values())}, or add examples of those labels.",
            )
        quota = dict.fromkeys(counts, n_per_class)
    else:
        quota = _proportional_quota(counts, int(n_train or 0), data)
    chosen: list[int] = []
    labels = np.asarray(data.labels)
    for label, take in quota.items():
        members = np.flatnonzero(labels == label)
        order = np.random.default_rng([seed, label]).permutation(members)
        chosen.extend(order[:take].tolist())
    spec = f"{n_per_class} per class" if n_per_class is not None else f"{n_train} examples"
    return data.subset(sorted(chosen), f"{data.source} (sample of {spec}, seed {seed})")


def _proportional_quota(counts: dict[int, int], n_train: int, data: LabelledData) -> dict[int, int]:
    total = sum(counts.values())
    if n_train < len(counts) or n_train > total:
        raise DataError(
            f"Invalid n_train {n_train} for {data.source}: it has {total} examples of "
            f"{len(counts)} labels.",
            f"Use n_train between {len(counts)} (one per label) and {total}.",
        )
    # One example per label first, the rest split in proportion to what each label has left.
    quota = dict.fromkeys(counts, 1)
    spare = {label: count - 1 for label, count in counts.items()}
    remaining = n_train - len(counts)
    spare_total = sum(spare.values())
    if remaining and spare_total:
        shares = {label: remaining * s / spare_total for label, s in spare.items()}
        floors = {label: int(np.floor(share)) for label, share in shares.items()}
        leftover = remaining - sum(floors.values())
        by_remainder = sorted(shares, key=lambda label: (floors[label] - shares[label], label))
        for label in by_remainder[:leftover]:
            floors[label] += 1
        for label in quota:
            quota[label] += min(floors[label], spare[label])
    return quota


def load_splits(
    train: Source,
    *,
    validation: Source | None = None,
    test: Source | None = None,
    text_column: str = "text",
    label_column: str = "label",
    label_names: Sequence[str] | None = None,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.0,
    n_per_class: int | None = None,
    n_train: int | None = None,
    seed: int = 0,
) -> DataSplits:
    """Load the sources, hold out what is not given, then draw the few-shot training sample.

    Held-out validation/test examples are taken from the full training pool before sampling,
    so a few-shot run is evaluated on the same examples whatever its training size. Hub ids
    load their 'train', 'validation' and 'test' splits for the three roles.
    """
    options = {"text_column": text_column, "label_column": label_column, "label_names": label_names}
    pool = load_labelled_data(train, split="train", **options)
    require_two_classes(pool, label_column)
    given_validation = (
        load_labelled_data(validation, split="validation", **options)
        if _given(validation)
        else None
    )
    given_test = load_labelled_data(test, split="test", **options) if _given(test) else None
    for role, given in (("validation", given_validation), ("test", given_test)):
        if given is not None and not len(given):
            raise DataError(
                f"The {role} set {given.source} has no examples.",
                f"Give a {role} set with examples, or none ({role}_fraction of the training "
                "data is then held out).",
            )
    splits = split_data(
        pool,
        validation=given_validation,
        test=given_test,
        test_fraction=test_fraction,
        validation_fraction=validation_fraction,
        seed=seed,
    )
    splits.train = sample_few_shot(
        splits.train, n_per_class=n_per_class, n_train=n_train, seed=seed
    )
    return _aligned(splits)


def require_two_classes(data: LabelledData, label_column: str = "label") -> None:
    """Refuse training data whose examples show fewer than two labels: a classifier trained
    on one label predicts it for everything and scores 1.0 on a test set of that label."""
    present = data.present_labels()
    if len(present) >= 2:
        return
    found = f"only one label, {present[0]!r}" if present else "no labels"
    named = ""
    if len(data.label_names) > len(present):
        named = f" (its label names list {len(data.label_names)}: {_listing(data.label_names)})"
    raise DataError(
        f"The training data {data.source} has {found}, in all {len(data)} examples{named}: "
        "a classifier needs examples of at least two classes.",
        f"Add examples of the other classes, or check that label_column={label_column!r} is "
        "the column that holds the classes.",
    )


def _given(source: Source | None) -> bool:
    """A validation/test source was passed (an empty string counts as none; a DataFrame has
    no truth value, so `if source` cannot tell)."""
    return source is not None and not (isinstance(source, str) and not source.strip())
