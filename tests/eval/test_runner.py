"""evaluate_checkpoint / evaluate_run: documented files, per-sample seeds, resume, both backends."""

from __future__ import annotations

import json
import os
import shlex
import sys
from contextlib import contextmanager
from importlib import metadata

import pandas as pd
import pytest
from evalkit import make_run_dir
from pydantic import ValidationError

from harness.data.arith import problems
from harness.errors import InvalidInput, RunFailed
from harness.eval.generation import Completion
from harness.eval.runner import evaluate_checkpoint, evaluate_run
from harness.runlock import FolderInUse
from harness.store import RunDir
from harness.suite import BenchmarkConfig, EvalConfig

COLUMNS = [
    "problem_id",
    "sample_index",
    "prompt",
    "output",
    "extracted",
    "target",
    "score",
    "score_status",
    "score_reason",
    "output_tokens",
    "finish_reason",
]


def _config(backend="transformers", samples=2, max_tokens=8, limit=5, **extra) -> EvalConfig:
    bench = BenchmarkConfig(samples=samples, max_tokens=max_tokens, limit=limit)
    return EvalConfig(backend=backend, benchmarks={"arith": bench}, **extra)


class ScriptedGenerator:
    """Answers every arith problem correctly; counts requests; can raise after `stop_after` samples."""

    name = "scripted"

    def __init__(self, stop_after: int | None = None):
        self.stop_after = stop_after
        self.requests = []
        self.answers = {p["id"]: p["answer"] for p in problems(200, "test")}

    def generate(self, requests):
        for count, request in enumerate(requests):
            if self.stop_after is not None and count == self.stop_after:
                raise KeyboardInterrupt  # a kill halfway through
            self.requests.append(request)
            yield request, Completion(f"\\boxed{{{self.answers[request.problem_id]}}}", 4, "stop")


def _factory(generator):
    @contextmanager
    def factory(checkpoint, eval_config, out_dir):
        yield generator

    return factory


def test_transformers_backend_writes_documented_files(tmp_path, tiny_checkpoint):
    out = tmp_path / "eval"
    summary = evaluate_checkpoint(tiny_checkpoint, out, _config(), ["arith"], quiet=True)["arith"]
    frame = pd.read_parquet(out / "arith" / "samples.parquet")
    assert list(frame.columns) == COLUMNS and len(frame) == 10
    assert sorted(set(frame["sample_index"])) == [0, 1] and frame["problem_id"].nunique() == 5
    on_disk = json.loads((out / "arith" / "summary.json").read_text())
    assert on_disk["benchmark"] == "arith" and on_disk["backend"] == "transformers"
    assert on_disk["k"] == 2 and on_disk["n_problems"] == 5 and on_disk["n_samples"] == 10
    assert on_disk["avg_at_k"] == pytest.approx(100 * frame["score"].mean())
    assert on_disk["pass_at_1"] == on_disk["avg_at_k"] == summary["avg_at_k"]
    assert on_disk["generation"]["max_tokens"] == 8 and on_disk["generation"]["temperature"] == 0.65
    assert on_disk["scorer"] == "evalscope" and on_disk["evalscope_adapter"] == "aime24"
    assert on_disk["versions"]["evalscope"] == metadata.version("evalscope") == on_disk["versions"]["evalscope_rules"]
    cached = [json.loads(line) for line in (out / "arith" / "generations.jsonl").read_text().splitlines()]
    assert len({c["seed"] for c in cached}) == 10  # every sample has its own seed
    # Lengths: max_tokens is 8, so a sample either stopped or was cut at 8 tokens ("length").
    assert all(1 <= c["output_tokens"] <= 8 or c["finish_reason"] == "stop" for c in cached)
    assert all((c["finish_reason"] == "length") == (c["output_tokens"] == 8) for c in cached)
    rows = {(r.problem_id, r.sample_index): (r.output_tokens, r.finish_reason) for r in frame.itertuples()}
    assert rows == {(c["problem_id"], c["sample_index"]): (c["output_tokens"], c["finish_reason"]) for c in cached}
    truncated = sum(c["finish_reason"] == "length" for c in cached) / 10
    assert on_disk["truncation_rate"] == pytest.approx(truncated)
    assert on_disk["output_tokens"]["p95"] <= 8 and on_disk["wall_time_s"] > 0
    assert on_disk["gpu_hours"] == 0  # a CPU evaluation spends no GPU time


def test_sample_text_depends_on_its_seed_not_its_batch(tiny_checkpoint):
    from harness.eval.generation import Request
    from harness.eval.hf_backend import TransformersGenerator

    generator = TransformersGenerator(tiny_checkpoint, batch_size=4)
    turn = ({"role": "user", "content": "Ana has 3 apples and gets 4 more."},)
    alone = Request("p", 0, turn, 11, 12, 1.0, 1.0)
    mates = [Request("p", i, turn, 100 + i, 12, 1.0, 1.0) for i in range(1, 4)]
    text_alone = {r.sample_index: t for r, t in generator.generate([alone])}[0]
    batched = {r.sample_index: t for r, t in generator.generate([alone, *mates])}
    assert batched[0] == text_alone
    assert len(set(batched.values())) > 1  # different seeds, different samples


def test_resume_after_kill_generates_only_missing_samples(tmp_path, tiny_checkpoint):
    out, config = tmp_path / "eval", _config(samples=3, limit=4)  # 12 samples
    with pytest.raises(KeyboardInterrupt):
        evaluate_checkpoint(
            tiny_checkpoint,
            out,
            config,
            ["arith"],
            quiet=True,
            generator_factory=_factory(ScriptedGenerator(stop_after=5)),
        )
    assert not (out / "arith" / "samples.parquet").exists()  # nothing half-written is left to trust
    assert len((out / "arith" / "generations.jsonl").read_text().splitlines()) == 5
    second = ScriptedGenerator()
    summary = evaluate_checkpoint(
        tiny_checkpoint, out, config, ["arith"], quiet=True, generator_factory=_factory(second)
    )["arith"]
    assert len(second.requests) == 7
    assert summary["n_samples"] == 12 and summary["avg_at_k"] == 100.0
    third = ScriptedGenerator()  # everything cached: no generation at all
    evaluate_checkpoint(tiny_checkpoint, out, config, ["arith"], quiet=True, generator_factory=_factory(third))
    assert third.requests == []


def test_a_second_evaluation_into_the_same_folder_is_refused_while_the_first_runs(tmp_path, tiny_checkpoint):
    # `harness eval RUN_DIR` beside a `harness run` evaluating that run: the second is refused, naming
    # the first, before it generates anything, and the first finishes with all its samples.
    out, config = tmp_path / "eval", _config(samples=2, limit=3)
    second, refused = ScriptedGenerator(), []

    class Interrupted(ScriptedGenerator):
        def generate(self, requests):
            for count, pair in enumerate(super().generate(requests)):
                if count == 2:
                    with pytest.raises(FolderInUse) as exc:
                        evaluate_checkpoint(tiny_checkpoint, out, config, ["arith"], quiet=True,
                                            generator_factory=_factory(second))  # fmt: skip
                    refused.append(str(exc.value))
                yield pair

    summary = evaluate_checkpoint(tiny_checkpoint, out, config, ["arith"], quiet=True,
                                  generator_factory=_factory(Interrupted()))["arith"]  # fmt: skip
    assert second.requests == []
    assert f"{out}: this evaluation folder is in use by another harness process (pid {os.getpid()}" in refused[0]
    assert f"`harness eval {tiny_checkpoint}`" in refused[0]
    assert summary["n_samples"] == 6 and summary["avg_at_k"] == 100.0


def test_changed_generation_settings_do_not_reuse_the_cache(tmp_path, tiny_checkpoint):
    out = tmp_path / "eval"
    evaluate_checkpoint(
        tiny_checkpoint,
        out,
        _config(max_tokens=8),
        ["arith"],
        quiet=True,
        generator_factory=_factory(ScriptedGenerator()),
    )
    again = ScriptedGenerator()
    evaluate_checkpoint(
        tiny_checkpoint, out, _config(max_tokens=9), ["arith"], quiet=True, generator_factory=_factory(again)
    )
    assert len(again.requests) == 10


def test_interrupted_new_evaluation_removes_the_old_results(tmp_path, tiny_checkpoint):
    out = tmp_path / "eval"
    evaluate_checkpoint(
        tiny_checkpoint,
        out,
        _config(max_tokens=8),
        ["arith"],
        quiet=True,
        generator_factory=_factory(ScriptedGenerator()),
    )
    assert (out / "arith" / "summary.json").exists()
    with pytest.raises(KeyboardInterrupt):
        evaluate_checkpoint(
            tiny_checkpoint,
            out,
            _config(max_tokens=9),
            ["arith"],
            quiet=True,
            generator_factory=_factory(ScriptedGenerator(stop_after=2)),
        )
    assert not (out / "arith" / "summary.json").exists()  # never a summary of other settings next to new samples
    assert not (out / "arith" / "samples.parquet").exists()


def test_evaluate_run_uses_spec_eval_settings(tmp_path, tiny_checkpoint):
    run = make_run_dir(tmp_path, tiny_checkpoint)  # smoke suite's [eval.benchmarks.arith]
    bench = RunDir(run).read_spec().eval.benchmarks["arith"]
    results = evaluate_run(RunDir(run), quiet=True)
    summary = json.loads((run / "eval" / "arith" / "summary.json").read_text())
    expected = bench.limit * bench.samples
    assert results["arith"]["n_samples"] == summary["n_samples"] == expected
    assert summary["n_problems"] == bench.limit and summary["generation"]["max_tokens"] == bench.max_tokens
    assert len(pd.read_parquet(run / "eval" / "arith" / "samples.parquet")) == expected


def test_evaluate_run_without_checkpoint_says_what_to_do(tmp_path):
    run = make_run_dir(tmp_path, None)
    with pytest.raises(InvalidInput, match="config.json missing"):
        evaluate_run(RunDir(run), quiet=True)


def test_vllm_backend_runs_through_the_started_server(tmp_path, tiny_checkpoint, fake_vllm_command, monkeypatch):
    monkeypatch.setenv("HARNESS_VLLM_COMMAND", shlex.join(fake_vllm_command))
    out = tmp_path / "eval"
    summary = evaluate_checkpoint(tiny_checkpoint, out, _config(backend="vllm", limit=20), ["arith"], quiet=True)[
        "arith"
    ]
    expected = 100 * sum(p["answer"] == "7" for p in problems(20, "test")) / 20  # the fake always says 7
    assert summary["backend"] == "vllm" and summary["avg_at_k"] == pytest.approx(expected)
    assert summary["versions"]["vllm"] == "0.0.0+fake"  # asked of the server, not of this Python
    assert "fake vllm: serving" in (out / "vllm.log").read_text()


def test_missing_benchmark_data_fails_before_any_model_loads(tmp_path, tiny_checkpoint):
    config = EvalConfig(
        backend="transformers", data_dir=str(tmp_path / "nowhere"), benchmarks={"aime24": BenchmarkConfig()}
    )
    never = ScriptedGenerator(stop_after=0)
    with pytest.raises(InvalidInput, match="harness data export aime24"):
        evaluate_checkpoint(tiny_checkpoint, tmp_path / "eval", config, ["aime24"], generator_factory=_factory(never))


def test_model_trained_on_arith_scores_well_above_zero_through_evalscope(tmp_path, tiny_checkpoint, arith_checkpoint):
    config = _config(samples=2, max_tokens=16, limit=30)
    untrained = evaluate_checkpoint(tiny_checkpoint, tmp_path / "untrained", config, ["arith"], quiet=True)["arith"]
    trained = evaluate_checkpoint(arith_checkpoint, tmp_path / "trained", config, ["arith"], quiet=True)["arith"]
    frame = pd.read_parquet(tmp_path / "trained" / "arith" / "samples.parquet")
    assert trained["scorer"] == "evalscope" and trained["n_excluded"] == 0
    assert trained["avg_at_k"] >= 30.0 > untrained["avg_at_k"]
    right = frame[frame["score"] == 1.0]
    assert (right["extracted"] == right["target"]).all() and (right["score_reason"] == "matched").all()


def test_eval_without_evalscope_names_the_install_command(tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.setitem(sys.modules, "evalscope", None)  # import evalscope -> ImportError
    never = ScriptedGenerator(stop_after=0)
    with pytest.raises(InvalidInput, match=r"pip install 'fp8-parity-harness\[eval\]'"):
        evaluate_checkpoint(tiny_checkpoint, tmp_path / "eval", _config(), ["arith"], generator_factory=_factory(never))


def _served(log) -> set[str]:
    return {line.split("seed ")[1] for line in log.read_text().splitlines() if "request seed" in line}


def test_data_parallel_replicas_share_the_requests_each_on_its_own_gpus(
    tmp_path, tiny_checkpoint, fake_vllm_command, monkeypatch
):
    monkeypatch.setenv("HARNESS_VLLM_COMMAND", shlex.join(fake_vllm_command))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5")
    out = tmp_path / "eval"
    config = _config(backend="vllm", samples=4, limit=20, tensor_parallel_size=2, max_concurrency=2)  # 3 replicas
    summary = evaluate_checkpoint(tiny_checkpoint, out, config, ["arith"], quiet=True)["arith"]
    logs = [out / "vllm.log", out / "vllm.1.log", out / "vllm.2.log"]
    assert [f"gpus={g}" in log.read_text() for log, g in zip(logs, ("0,1", "2,3", "4,5"), strict=True)] == [True] * 3
    served = [_served(log) for log in logs]
    assert all(served) and sum(map(len, served)) == 80 and len(set().union(*served)) == 80  # each sample once
    assert summary["generation"]["data_parallel_size"] == 3
    assert summary["gpu_hours"] == pytest.approx(summary["wall_time_s"] * 6 / 3600)


def test_too_many_replicas_for_the_visible_gpus_are_refused_before_any_server_starts(
    tmp_path, tiny_checkpoint, monkeypatch
):
    monkeypatch.setenv("HARNESS_VLLM_COMMAND", "/nonexistent/vllm serve")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with pytest.raises(InvalidInput, match="data_parallel_size x tensor_parallel_size = 3 x 1 GPUs, but 2 are visible"):
        evaluate_checkpoint(
            tiny_checkpoint, tmp_path / "eval", _config(backend="vllm", data_parallel_size=3), ["arith"]
        )


def test_a_replica_dying_midway_loses_nothing_finished_and_the_rerun_generates_only_the_rest(
    tmp_path, tiny_checkpoint, fake_vllm_command, monkeypatch
):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    out, config = tmp_path / "eval", _config(backend="vllm", samples=4, limit=10, max_concurrency=1)  # 40 samples
    monkeypatch.setenv("HARNESS_VLLM_COMMAND", shlex.join([*fake_vllm_command, "--mode", "die-after=6"]))
    with pytest.raises(RunFailed, match="vLLM server died"):
        evaluate_checkpoint(tiny_checkpoint, out, config, ["arith"], quiet=True)
    finished = len((out / "arith" / "generations.jsonl").read_text().splitlines())
    assert 6 <= finished < 40 and not (out / "arith" / "summary.json").exists()
    monkeypatch.setenv("HARNESS_VLLM_COMMAND", shlex.join(fake_vllm_command))
    for log in out.glob("vllm*.log"):
        log.unlink()
    summary = evaluate_checkpoint(tiny_checkpoint, out, config, ["arith"], quiet=True)["arith"]
    again = set().union(*(_served(log) for log in out.glob("vllm*.log")))
    assert len(again) == 40 - finished and summary["n_samples"] == 40
    assert summary["generation_sessions"] == 2  # the wall time of both sessions counts


def test_samples_cut_at_max_tokens_are_counted_as_truncated(tmp_path, tiny_checkpoint, fake_vllm_command, monkeypatch):
    monkeypatch.setenv("HARNESS_VLLM_COMMAND", shlex.join(fake_vllm_command))
    summary = evaluate_checkpoint(
        tiny_checkpoint, tmp_path / "eval", _config(backend="vllm", max_tokens=3), ["arith"], quiet=True
    )["arith"]
    assert summary["truncation_rate"] == 1.0 and summary["output_tokens"] == {"mean": 3.0, "p95": 3.0}


def test_server_args_reach_vllm_after_the_checkpoint_and_are_recorded(
    tmp_path, tiny_checkpoint, fake_vllm_command, monkeypatch
):
    monkeypatch.setenv("HARNESS_VLLM_COMMAND", shlex.join(fake_vllm_command))
    out = tmp_path / "eval"
    config = _config(backend="vllm", server_args=["--max-model-len", "4096", "--enforce-eager"])
    summary = evaluate_checkpoint(tiny_checkpoint, out, config, ["arith"], quiet=True)["arith"]
    assert "more arguments ['--max-model-len', '4096', '--enforce-eager']" in (out / "vllm.log").read_text()
    assert summary["generation"]["server_args"] == ["--max-model-len", "4096", "--enforce-eager"]


@pytest.mark.parametrize("arg", ["--port", "--seed=3", "--tensor-parallel-size"])
def test_server_args_the_harness_sets_itself_are_refused_with_the_setting_to_use(arg):
    with pytest.raises(
        ValidationError, match=f"{arg.split('=')[0]} is set by the harness .*remove it from server_args"
    ):
        EvalConfig(server_args=[arg, "1"])
