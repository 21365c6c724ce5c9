"""The end of `harness run` with W&B: parity, eval scores and the report go into every run's W&B run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.store import RunDir
from harness.telemetry.wandb_offline import read_wandb_run
from harness.telemetry.wandb_results import run_results

ROOT = Path(__file__).parents[2]

PARITY = {
    "comparisons": [
        {
            "candidate": {"run_id": "sft-fp8-s0"}, "baseline": {"run_id": "sft-bf16-s0"},
            "verdict": "parity", "status": "ok",
            "speed": {"speedup": {"value": 1.25, "ci_low": 1.2, "ci_high": 1.3}, "time_reduction_pct": 20.0,
                      "throughput_gain_pct": 25.0},
            "memory": {"alloc_ratio": None, "nvml_ratio": 0.8, "memory_reduction_pct": 20.0},
            "energy": {"per_token_ratio": 0.9},
            "loss": {"mean_rel_error": 0.001, "max_rel_error": 0.002, "mean_signed_rel_error": -0.0005},
            "eval": {"aime24": {"delta": {"value": -1.0, "ci_low": -4.0, "ci_high": 2.0}, "verdict": "parity"}},
        }
    ]
}  # fmt: skip
AIME = {"aime24": {"avg_at_k": 30.0, "pass_at_1": 0.3, "k": 32, "n_problems": 30, "backend": "vllm"}}


def test_an_fp8_run_gets_its_comparison_and_scores_as_summary_values():
    values = run_results("sft-fp8-s0", PARITY, AIME, gate_passed=True)
    assert values == {
        "eval/aime24/avg_at_k": 30.0, "eval/aime24/pass_at_1": 0.3, "eval/aime24/k": 32, "eval/aime24/n_problems": 30,
        "parity/verdict": "parity", "parity/status": "ok", "parity/baseline_run_id": "sft-bf16-s0",
        "parity/speedup": 1.25, "parity/speedup_ci_low": 1.2, "parity/speedup_ci_high": 1.3,
        "parity/time_reduction_pct": 20.0, "parity/throughput_gain_pct": 25.0,
        "parity/memory_ratio": 0.8,  # no allocator peak (CPU): NVML's ratio is the headline, as in parity.json
        "parity/memory_reduction_pct": 20.0, "parity/nvml_memory_ratio": 0.8, "parity/energy_per_token_ratio": 0.9,
        "parity/loss_mean_rel_error": 0.001, "parity/loss_max_rel_error": 0.002,
        "parity/loss_mean_signed_rel_error": -0.0005,
        "parity/eval/aime24/delta": -1.0, "parity/eval/aime24/delta_ci_low": -4.0,
        "parity/eval/aime24/delta_ci_high": 2.0, "parity/eval/aime24/verdict": "parity",
        "parity/gate_passed": True,
    }  # fmt: skip


def test_the_baseline_run_gets_its_scores_only():
    assert run_results("sft-bf16-s0", PARITY, AIME) == {
        "eval/aime24/avg_at_k": 30.0, "eval/aime24/pass_at_1": 0.3, "eval/aime24/k": 32, "eval/aime24/n_problems": 30,
    }  # fmt: skip


SHORT = ["--stage", "cpt", "--skip-eval", "--quiet", "--set", "stages.cpt.steps=6", "--set",
         "stages.cpt.checkpoint_every=3", "--set", "telemetry.warmup_steps=1", "--set", "telemetry.loggers=wandb"]  # fmt: skip


@pytest.fixture(scope="module")
def smoke_with_wandb(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke-wandb")
    args = ["run", str(ROOT / "suites" / "smoke.toml"), "--runs-dir", str(root / "runs"),
            "--report-dir", str(root / "report"), *SHORT]  # fmt: skip
    return main(args), root, args


def test_harness_run_logs_both_arms_and_ends_with_results_and_the_report(smoke_with_wandb):
    code, root, _ = smoke_with_wandb
    assert code in (0, 1), "a gate verdict, not missing data or a failed run"
    suite_dir = root / "runs" / "smoke"
    parity = json.loads((suite_dir / "parity.json").read_text())
    ids = set()
    for run_id in ("cpt-bf16-s0", "cpt-fp8-s0"):
        run = RunDir(suite_dir / run_id)
        wb = read_wandb_run(run.path)
        ids.add(wb.run_id)
        assert wb.group == "smoke" and wb.name == run_id and f"arm:{run_id.split('-')[1]}" in wb.tags
        assert len(wb.folders) == 2  # the training segment and the results segment, one W&B run
        assert wb.steps() == [r["step"] for r in run.read_metrics()] == list(range(1, 7))
        assert wb.artifacts == ["smoke-report"]
        assert wb.summary["summary/status"] == "completed"
        assert wb.summary["parity/gate_passed"] == (code == 0)
    assert len(ids) == 2
    fp8 = read_wandb_run(suite_dir / "cpt-fp8-s0")
    row = parity["comparisons"][0]
    speedup = (row.get("speed") or {}).get("speedup") or {}
    assert row["emulated"] and speedup.get("value") is None  # emulated FP8 makes no speed claim ...
    assert "parity/speedup" not in fp8.summary  # ... in W&B neither
    assert fp8.summary["parity/loss_max_rel_error"] == row["loss"]["max_rel_error"]
    assert fp8.summary["parity/baseline_run_id"] == "cpt-bf16-s0"
    assert "parity/speedup" not in read_wandb_run(suite_dir / "cpt-bf16-s0").summary


def test_running_the_suite_again_replaces_the_results_segment(smoke_with_wandb):
    _, root, args = smoke_with_wandb
    run = RunDir(root / "runs" / "smoke" / "cpt-fp8-s0")
    before = read_wandb_run(run.path)
    assert main(args) in (0, 1)  # trained already: only compare, report, gate and publish again
    after = read_wandb_run(run.path)
    assert after.run_id == before.run_id and len(after.folders) == 2
    assert after.folders[0] == before.folders[0] and after.folders[1] != before.folders[1]
    assert after.history == before.history


def test_a_wandb_run_that_cannot_be_opened_is_reported_and_skipped(tmp_path, monkeypatch, capsys):
    from fakes import make_spec

    from harness.errors import InvalidInput
    from harness.store import atomic_write_json
    from harness.telemetry import wandb_results
    from harness.telemetry.wandb_logger import write_state

    spec = make_spec(loggers=("wandb",))
    run = RunDir(tmp_path / spec.run_id)
    run.path.mkdir()
    atomic_write_json(run.spec, spec.model_dump(mode="json"))
    write_state(run, {"id": "abc", "mode": "online"})

    def offline_network(*args):
        raise InvalidInput("wandb.init failed in mode 'online': network unreachable")

    monkeypatch.setattr(wandb_results, "open_run", offline_network)
    report = tmp_path / "index.html"
    report.write_text("<html></html>")
    assert wandb_results.publish_results(tmp_path, {"comparisons": []}, report) == []
    assert "W&B: wandb.init failed in mode 'online'" in capsys.readouterr().err
