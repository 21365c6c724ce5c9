"""A suite's runs evaluated side by side on one node, each on its own GPUs (harness/eval/arms.py):
real `harness eval RUN_DIR` processes against the fake vLLM server, which logs the GPUs it got."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
from evalkit import make_run_dir

from harness.engine import evaluate_all
from harness.errors import InvalidInput
from harness.eval.arms import evaluate_side_by_side, gpu_shares
from harness.suite import EvalConfig, load_suite, plan


def test_gpus_are_split_evenly_in_whole_replicas_or_not_at_all():
    gpus = [str(i) for i in range(8)]
    assert gpu_shares(2, EvalConfig(backend="vllm"), gpus) == [gpus[:4], gpus[4:]]
    # tensor parallel 2: three runs get one replica of 2 GPUs each; 2 GPUs stay idle
    assert gpu_shares(3, EvalConfig(backend="vllm", tensor_parallel_size=2), gpus) == [
        ["0", "1"],
        ["2", "3"],
        ["4", "5"],
    ]
    # an explicit data_parallel_size is each run's: 2 runs x 3 replicas fit on 8 GPUs, x 5 do not
    assert gpu_shares(2, EvalConfig(backend="vllm", data_parallel_size=3), gpus) == [gpus[:3], gpus[3:6]]
    assert gpu_shares(2, EvalConfig(backend="vllm", data_parallel_size=5), gpus) is None
    assert gpu_shares(2, EvalConfig(backend="vllm"), ["0"]) is None  # one GPU: the runs take turns
    assert gpu_shares(2, EvalConfig(backend="vllm"), None) is None  # GPUs unknown
    assert gpu_shares(2, EvalConfig(backend="transformers"), gpus) is None
    assert gpu_shares(1, EvalConfig(backend="vllm"), gpus) is None  # one run: it takes every GPU itself


def _run(tmp_path, name, checkpoint):
    overrides = ["eval.backend=vllm", "eval.benchmarks.arith.samples=2", "eval.benchmarks.arith.limit=6"]
    return make_run_dir(tmp_path / name, checkpoint, overrides)


def test_two_runs_are_evaluated_at_once_each_on_its_own_gpus(tmp_path, tiny_checkpoint, fake_vllm_command,
                                                             monkeypatch):  # fmt: skip
    monkeypatch.setenv("HARNESS_VLLM_COMMAND", shlex.join(fake_vllm_command))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    runs = [_run(tmp_path, "a", tiny_checkpoint), _run(tmp_path, "b", tiny_checkpoint)]
    said = []
    evaluate_side_by_side(runs, gpu_shares(2, EvalConfig(backend="vllm"), ["0", "1", "2", "3"]), True, said.append)
    assert said == [f"eval {runs[0].name} on GPUs 0,1", f"eval {runs[1].name} on GPUs 2,3"]
    for run, gpus in zip(runs, (("0", "1"), ("2", "3")), strict=True):
        logs = [run / "eval" / "vllm.log", run / "eval" / "vllm.1.log"]  # two replicas of one GPU each
        assert [f"gpus={g}" in log.read_text() for log, g in zip(logs, gpus, strict=True)] == [True, True]
        summary = json.loads((run / "eval" / "arith" / "summary.json").read_text())
        assert summary["n_samples"] == 12 and summary["generation"]["data_parallel_size"] == 2


def test_a_run_that_cannot_be_evaluated_is_named_and_the_other_still_finishes(tmp_path, tiny_checkpoint,
                                                                              fake_vllm_command, monkeypatch):  # fmt: skip
    monkeypatch.setenv("HARNESS_VLLM_COMMAND", shlex.join(fake_vllm_command))
    good, bad = _run(tmp_path, "a", tiny_checkpoint), _run(tmp_path, "b", None)  # b has no checkpoint
    with pytest.raises(InvalidInput, match=r"no Hugging Face checkpoint here \(config.json missing\)"):
        evaluate_side_by_side([good, bad], [["0"], ["1"]], True, lambda _: None)
    assert json.loads((good / "eval" / "arith" / "summary.json").read_text())["n_samples"] == 12


@pytest.mark.parametrize("visible, expected", [("0,1", {"sft-bf16-s0": "0", "sft-fp8-s0": "1"}),
                                               ("0", {"sft-bf16-s0": "0", "sft-fp8-s0": "0"})])  # fmt: skip
def test_the_engine_evaluates_the_arms_side_by_side_only_where_the_gpus_allow(
    visible, expected, tmp_path, tiny_checkpoint, fake_vllm_command, monkeypatch
):
    monkeypatch.setenv("HARNESS_VLLM_COMMAND", shlex.join(fake_vllm_command))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    overrides = ["eval.backend=vllm", "eval.benchmarks.arith.samples=2", "eval.benchmarks.arith.limit=6"]
    suite = load_suite(Path(__file__).parents[2] / "suites" / "smoke.toml", overrides)
    specs = [s for s in plan(suite) if s.stage_name == "sft"]
    suite_dir = tmp_path / "runs" / "smoke"
    for spec in specs:
        (suite_dir / spec.run_id).mkdir(parents=True)
        (suite_dir / spec.run_id / "spec.json").write_text(json.dumps(spec.model_dump(mode="json")))
        shutil.copytree(tiny_checkpoint, suite_dir / spec.run_id / "checkpoints" / "final")
    evaluate_all(specs, suite, suite_dir, quiet=True)
    for run_id, gpu in expected.items():
        assert f"gpus={gpu}" in (suite_dir / run_id / "eval" / "vllm.log").read_text()
        assert json.loads((suite_dir / run_id / "eval" / "arith" / "summary.json").read_text())["n_samples"] == 12
