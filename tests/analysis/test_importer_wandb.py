"""`harness import` of Weights & Biases runs: an offline run folder, or its exported history."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import torch

from harness.analysis.compare import compare_suite
from harness.cli import main
from harness.store import RunDir
from harness.telemetry import Telemetry
from harness.telemetry.wandb_logger import close_wandb

sys.path.insert(0, str(Path(__file__).parents[1] / "telemetry"))
from fakes import make_spec  # noqa: E402

ROUND_TRIP = ("step", "loss", "lr", "grad_norm", "tokens", "step_time_s", "tokens_per_s", "time_s")


def _harness_run_with_wandb(root: Path) -> RunDir:
    spec = make_spec(loggers=("wandb",))
    run = RunDir(root / spec.run_id)
    tel = Telemetry(run, spec, device=torch.device("cpu"), flops_per_token=1e6, total_steps=6, quiet=True)
    tel.start()
    for step in range(1, 7):
        with tel.step(step) as rec:
            rec.update(loss=4.0 / step, lr=1e-3 * step, grad_norm=0.5, tokens=64)
    tel.finish("completed")
    return run


def _external_wandb_run(root: Path, run_id: str, iteration_ms: float) -> Path:
    """A run logged the way Megatron-LM logs to W&B: its own key names, W&B's implicit steps from 0."""
    import wandb

    settings = wandb.Settings(console="off", x_disable_stats=True, quiet=True)
    run = wandb.init(id=run_id, project="team", dir=str(root), mode="offline", settings=settings)
    for i in range(12):
        run.log({"lm loss": 3.0 - 0.01 * i, "iteration-time": (iteration_ms + (i % 3)) / 1000, "learning-rate": 1e-4})
    run.finish()
    close_wandb()
    return Path(run.dir).parent


def test_a_harness_wandb_run_imports_back_to_its_metrics(tmp_path):
    original = _harness_run_with_wandb(tmp_path / "runs" / "tel")
    for n, source in enumerate((original.path / "wandb", original.path)):  # the wandb/ folder, or the run dir
        out = tmp_path / "imported" / "wb" / f"cpt-a-s{n}"
        assert main(["import", str(source), "--out", str(out), "--arm", "a", "--recipe", "bf16"]) == 0
        imported = RunDir(out)
        assert imported.read_manifest()["source_kind"] == "wandb"
        assert [{k: r[k] for k in ROUND_TRIP} for r in imported.read_metrics()] == [
            {k: r[k] for k in ROUND_TRIP} for r in original.read_metrics()
        ]


def test_two_imported_wandb_runs_compare_like_our_own(tmp_path):
    suite = tmp_path / "runs" / "team"
    for arm, recipe, ms in (("bf16", "bf16", 2000.0), ("fp8", "te:blockwise", 1600.0)):
        folder = _external_wandb_run(tmp_path / arm, f"team-{arm}", ms)
        assert (
            main(["import", str(folder), "--out", str(suite / f"cpt-{arm}-s0"), "--arm", arm, "--recipe", recipe]) == 0
        )
    records = RunDir(suite / "cpt-fp8-s0").read_metrics()
    assert [r["step"] for r in records] == list(range(1, 13))  # W&B's _step 0..11, counted from 1 as ours are
    assert records[4]["loss"] == pytest.approx(2.96) and records[4]["step_time_s"] == pytest.approx(1.601)
    row = compare_suite(suite, n_resamples=200).model_dump(mode="json")["comparisons"][0]
    assert row["candidate"]["status"] == "imported"
    assert row["speed"]["speedup"]["value"] == pytest.approx(2001 / 1601, rel=1e-3)


def test_exported_history_imports_as_api_csv_jsonl_and_the_web_csv(tmp_path):
    rows = [{"_step": s, "train/loss": 2.0 / s, "train/step_time_s": 0.5, "_runtime": 0.5 * s} for s in range(1, 6)]
    api_csv = tmp_path / "history.csv"  # run.history().to_csv(): an index column, then the keys
    with api_csv.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["", *rows[0]])
        writer.writeheader()
        writer.writerows({"": i, **r} for i, r in enumerate(rows))
    jsonl = tmp_path / "history.jsonl"  # scan_history(), one row per line
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    web_csv = tmp_path / "panel.csv"  # the web UI's export of a loss panel
    web_csv.write_text('"Step","fp8 - train/loss","fp8 - train/loss__MIN","fp8 - train/loss__MAX"\n'
                       + "".join(f'"{r["_step"]}","{r["train/loss"]}","0","9"\n' for r in rows))  # fmt: skip
    for source in (api_csv, jsonl, web_csv):
        out = tmp_path / "runs" / "x" / source.stem
        assert main(["import", str(source), "--out", str(out), "--recipe", "te:blockwise"]) == 0
        records = RunDir(out).read_metrics()
        assert [r["step"] for r in records] == [1, 2, 3, 4, 5], source.name
        assert [r["loss"] for r in records] == pytest.approx([2.0 / s for s in range(1, 6)]), source.name
    assert RunDir(tmp_path / "runs" / "x" / "history").read_metrics()[2]["time_s"] == 1.5  # W&B's run clock


def test_a_folder_with_several_wandb_runs_is_refused_naming_them(tmp_path, capsys):
    _external_wandb_run(tmp_path / "many", "run-one", 1000.0)
    _external_wandb_run(tmp_path / "many", "run-two", 1000.0)
    assert main(["import", str(tmp_path / "many" / "wandb"), "--out", str(tmp_path / "out")]) == 2
    assert "several W&B runs (run-one, run-two)" in capsys.readouterr().err


def test_an_export_without_steps_is_refused(tmp_path, capsys):
    export = tmp_path / "history.csv"
    export.write_text("loss\n1.0\n")
    assert main(["import", str(export), "--out", str(tmp_path / "out")]) == 2
    assert "no '_step' (or 'Step') column" in capsys.readouterr().err
