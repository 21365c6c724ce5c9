"""benchmarks/summarize.py: pytest-benchmark JSON -> Markdown table with ratios against BF16."""

from __future__ import annotations

import json

import pytest
from benchkit import load_benchmark_module

from harness.errors import InvalidInput

GIB = 2**30


summarize = load_benchmark_module("summarize")


def _bench(case, recipe, median_s, peak_gib, *, preset="qwen2.5-1.5b", batch=4, seq_len=2048, **extra):
    info = dict(case=case, recipe=recipe, preset=preset, batch=batch, seq_len=seq_len, compile=False)
    info.update(peak_alloc_bytes=int(peak_gib * GIB), device="NVIDIA H100 80GB HBM3", torch="2.11.0+cu130")
    info.update(transformer_engine="2.20.2", torchao="0.18.0", **extra)
    name = f"test_{case}[{recipe}]"
    return {"name": name, "fullname": f"benchmarks/x.py::{name}", "extra_info": info,
            "stats": {"median": median_s, "rounds": 10}}  # fmt: skip


def _data(*benchmarks):
    return {"benchmarks": list(benchmarks), "datetime": "2026-11-25T12:00:00"}


def test_speedup_and_memory_ratio_are_against_bf16_of_the_same_case_and_shape():
    data = _data(
        _bench("mlp", "te:current", 0.008, 1.5),
        _bench("mlp", "bf16", 0.010, 2.0),
        _bench("mlp", "bf16", 0.040, 8.0, preset="qwen2.5-7b", batch=2, seq_len=4096),
        _bench("mlp", "te:current", 0.020, 4.0, preset="qwen2.5-7b", batch=2, seq_len=4096),
    )
    by_key = {(r.shape, r.recipe): r for r in summarize.rows(data)}
    small = by_key[("qwen2.5-1.5b, 4x2048", "te:current")]
    assert small.median_ms == pytest.approx(8.0)
    assert small.speedup_vs_bf16 == pytest.approx(1.25)
    assert small.memory_vs_bf16 == pytest.approx(0.75)
    large = by_key[("qwen2.5-7b, 2x4096", "te:current")]
    assert large.speedup_vs_bf16 == pytest.approx(2.0)
    assert large.memory_vs_bf16 == pytest.approx(0.5)
    assert by_key[("qwen2.5-1.5b, 4x2048", "bf16")].speedup_vs_bf16 == pytest.approx(1.0)


def test_rows_are_ordered_by_case_then_shape_with_bf16_first():
    data = _data(
        _bench("model_step", "torchao:tensorwise", 0.05, 10, num_layers=4),
        _bench("model_step", "bf16", 0.06, 12, num_layers=4),
        _bench("decoder_layer", "te:delayed", 0.02, 3),
        _bench("linear", "torchao:rowwise", 0.002, 1),
        _bench("linear", "bf16", 0.003, 1),
    )
    order = [(r.case, r.recipe) for r in summarize.rows(data)]
    assert order == [
        ("linear", "bf16"),
        ("linear", "torchao:rowwise"),
        ("decoder_layer", "te:delayed"),
        ("model_step", "bf16"),
        ("model_step", "torchao:tensorwise"),
    ]


def test_markdown_table_has_header_line_and_dash_where_bf16_is_missing():
    data = _data(
        _bench("model_step", "bf16", 0.060, 12.0, num_layers=4),
        _bench("model_step", "torchao:tensorwise", 0.050, 9.0, num_layers=4),
        _bench("decoder_layer", "te:delayed", 0.020, 3.0),
    )
    text = summarize.markdown(data)
    assert text.splitlines()[0].startswith("NVIDIA H100 80GB HBM3, torch 2.11.0+cu130, Transformer Engine 2.20.2")
    assert "eager; median of 10 timed rounds" in text.splitlines()[0]
    assert "cuBLAS" not in text.splitlines()[0]  # baselines saved before versions named cuBLAS
    assert "| model_step | qwen2.5-1.5b, 4 layers, 4x2048 | torchao:tensorwise | 50.00 | 1.200 | 9.00 | 0.750 |" in text
    assert "| decoder_layer | qwen2.5-1.5b, 4x2048 | te:delayed | 20.00 | — | 3.00 | — |" in text


def test_the_header_names_the_cublas_the_benchmarks_ran_with():
    data = _data(_bench("linear", "bf16", 0.003, 1, cublas="13.10.0"))
    assert "torch 2.11.0+cu130, cuBLAS 13.10.0, Transformer Engine 2.20.2" in summarize.header(data)


def test_benchmark_without_the_suites_extra_info_is_refused_naming_file_and_field():
    bench = _bench("mlp", "bf16", 0.01, 1.0)
    del bench["extra_info"]["peak_alloc_bytes"]
    with pytest.raises(
        InvalidInput,
        match=r"run\.json: benchmark benchmarks/x\.py::test_mlp\[bf16\] has no extra_info\.peak_alloc_bytes",
    ):
        summarize.rows(_data(bench), "run.json")


def test_file_with_no_benchmarks_is_refused():
    with pytest.raises(InvalidInput, match="no 'benchmarks'"):
        summarize.rows({"benchmarks": []}, "empty.json")


def test_cli_writes_the_table_to_out_and_exits_2_on_unreadable_json(tmp_path, capsys):
    good = tmp_path / "run.json"
    good.write_text(json.dumps(_data(_bench("linear", "bf16", 0.003, 1.0))))
    out = tmp_path / "table.md"
    assert summarize.main([str(good), "-o", str(out)]) == 0
    assert "| linear | qwen2.5-1.5b, 4x2048 | bf16 | 3.00 | 1.000 | 1.00 | 1.000 |" in out.read_text()

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert summarize.main([str(bad)]) == 2
    assert "bad.json: cannot read pytest-benchmark JSON" in capsys.readouterr().err
