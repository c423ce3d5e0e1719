"""The catalog's recommended fine-tuning methods: known to the method table, `auto` first for
the encoders, and a catalog naming a method nobody provides is refused before anything is
written."""

from __future__ import annotations

from transferlab import Registry
from transferlab.catalog.seed import read_catalog
from transferlab.finetuning.methods import method_names


def test_every_listed_method_exists_and_encoders_recommend_auto():
    known = set(method_names())
    with_methods = [m for m in read_catalog() if (m.finetune or {}).get("methods")]
    assert with_methods
    for model in with_methods:
        listed = model.finetune["methods"]
        assert set(listed) <= known, (model.name, listed)
        if model.task in ("feature-extraction", "fill-mask", "text-classification"):
            assert listed[0] == "auto" and "lp_ft" in listed, (model.name, listed)


def test_a_catalog_listing_an_unknown_method_is_refused(tmp_path, run_cli):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        "models:\n"
        "  - name: good\n    source: hf\n    source_ref: org/good\n    task: fill-mask\n"
        "  - name: bad\n    source: hf\n    source_ref: org/bad\n    task: fill-mask\n"
        "    finetune:\n      methods: [auto, adapters]\n"
    )
    path = tmp_path / "reg.duckdb"
    code, _, err = run_cli("init", "--catalog", catalog, "--registry", path, "--no-profile")
    assert code == 2
    assert f"{catalog}:11: entry bad: key finetune.methods: unknown method(s) ['adapters']" in err
    assert "known methods: auto, lora" in err
    assert Registry(path).model_names() == []
