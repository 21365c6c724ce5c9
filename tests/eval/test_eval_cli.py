"""`harness eval` and `harness data` through the real command table."""

from __future__ import annotations

import json
import shlex

import pandas as pd

from harness.cli import main
from harness.eval import export


def test_eval_bare_checkpoint_needs_out(tiny_checkpoint, capsys):
    assert main(["eval", str(tiny_checkpoint), "--bench", "arith"]) == 2
    assert "--out" in capsys.readouterr().err


def test_eval_bare_checkpoint_with_flags(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "results"
    args = [
        "eval",
        str(tiny_checkpoint),
        "--bench",
        "arith",
        "--backend",
        "transformers",
        "--out",
        str(out),
        "--samples",
        "2",
        "--max-tokens",
        "4",
        "--limit",
        "3",
        "--quiet",
    ]
    assert main(args) == 0
    summary = json.loads((out / "arith" / "summary.json").read_text())
    assert summary["k"] == 2 and summary["n_problems"] == 3 and summary["generation"]["max_tokens"] == 4
    assert len(pd.read_parquet(out / "arith" / "samples.parquet")) == 6
    assert "arith" in capsys.readouterr().out


def test_eval_flags_set_the_vllm_replicas_and_requests_in_flight(tiny_checkpoint, tmp_path, fake_vllm_command,
                                                               monkeypatch):  # fmt: skip
    monkeypatch.setenv("HARNESS_VLLM_COMMAND", shlex.join(fake_vllm_command))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    out = tmp_path / "results"
    args = ["eval", str(tiny_checkpoint), "--bench", "arith", "--backend", "vllm", "--out", str(out), "--limit", "4",
            "--samples", "2", "--max-tokens", "4", "--data-parallel-size", "2", "--max-concurrency", "3", "--quiet"]  # fmt: skip
    assert main(args) == 0
    generation = json.loads((out / "arith" / "summary.json").read_text())["generation"]
    assert (generation["data_parallel_size"], generation["max_concurrency"]) == (2, 3)
    assert (out / "vllm.1.log").exists() and not (out / "vllm.2.log").exists()  # two servers of three GPUs


def test_eval_names_the_flag_of_a_bad_value(tiny_checkpoint, tmp_path, capsys):
    args = ["eval", str(tiny_checkpoint), "--bench", "arith", "--out", str(tmp_path), "--max-concurrency", "0"]
    assert main(args) == 2
    assert "--max-concurrency 0: Input should be greater than 0" in capsys.readouterr().err


def test_eval_rejects_a_folder_that_is_neither_run_nor_checkpoint(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "neither a run directory" in capsys.readouterr().err


def test_data_export_offline_exits_2_with_a_clear_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(export, "hub_reachable", lambda *a, **k: False)
    assert main(["data", "export", "aime24", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cannot reach huggingface.co" in err and "Traceback" not in err


def test_data_export_of_local_benchmark_writes_the_layout(tmp_path):
    assert main(["data", "export", "arith", "--out", str(tmp_path)]) == 0
    lines = (tmp_path / "arith" / "test.jsonl").read_text().splitlines()
    assert len(lines) == 200 and {"id", "problem", "answer"} <= set(json.loads(lines[0]))
