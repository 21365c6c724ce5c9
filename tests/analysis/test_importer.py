import json
from pathlib import Path

import pytest

from harness.analysis.compare import compare_suite
from harness.analysis.importer import parse_megatron_log
from harness.cli import main
from harness.store import RunDir

# A made-up Megatron-LM log in the real line format (20 iterations logged every 2, two ranks' memory reports).
MEGATRON_LOG = Path(__file__).parents[1] / "fixtures" / "analysis" / "megatron_bf16.log"


def test_megatron_iteration_and_memory_lines_become_metrics():
    records = parse_megatron_log(MEGATRON_LOG.read_text(), seq_len=4096)
    assert [r["step"] for r in records] == list(range(2, 21, 2))
    first, tenth = records[0], records[4]
    assert first["step_time_s"] == pytest.approx(4.0764)
    assert first["loss"] == pytest.approx(7.732250)
    assert first["lr"] == pytest.approx(5e-6) and first["grad_norm"] == pytest.approx(0.75)
    assert first["tokens"] == 128 * 4096
    assert tenth["peak_alloc_bytes"] == pytest.approx(55223.4 * 1024 * 1024)  # max over ranks
    assert tenth["peak_reserved_bytes"] == pytest.approx(58000.0 * 1024 * 1024)


def test_import_cli_writes_an_imported_run_directory(tmp_path):
    out = tmp_path / "runs" / "megatron" / "cpt-bf16-s0"
    code = main(["import", str(MEGATRON_LOG), "--out", str(out), "--arm", "bf16", "--recipe", "bf16",
                 "--label", "InfiR2 1.5B BF16", "--seq-len", "4096"])  # fmt: skip
    assert code == 0
    run = RunDir(out)
    manifest = run.read_manifest()
    assert manifest["status"] == "imported" and manifest["label"] == "InfiR2 1.5B BF16"
    assert manifest["source_kind"] == "megatron-log"
    spec = run.read_spec()
    assert (spec.suite, spec.arm, spec.recipe, spec.stage_name) == ("megatron", "bf16", "bf16", "cpt")
    summary = run.read_summary()
    assert summary["status"] == "imported"
    assert summary["step_time_s"]["median"] == pytest.approx(3.1733, abs=0.01)  # warm-up steps 2 excluded
    assert len(run.read_metrics()) == 10


def test_two_imported_megatron_runs_compare_like_our_own(tmp_path):
    suite = tmp_path / "runs" / "megatron"
    fp8_log = tmp_path / "fp8.log"
    fp8_log.write_text(MEGATRON_LOG.read_text().replace("3170.2", "2950.0").replace("3176.4", "2950.0"))
    for arm, recipe, log in (("bf16", "bf16", MEGATRON_LOG), ("fp8", "te:blockwise", fp8_log)):
        assert main(["import", str(log), "--out", str(suite / f"cpt-{arm}-s0"), "--arm", arm, "--recipe", recipe]) == 0
    row = compare_suite(suite, n_resamples=200).comparisons[0]
    assert row.candidate.status == "imported"
    assert row.speed.speedup.value == pytest.approx(3.1733 / 2.95, rel=0.01)


def test_tensorboard_events_round_trip_into_metrics(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "tb"))
    for step in range(1, 11):
        writer.add_scalar("lm loss", 3.0 - 0.1 * step, step)
        writer.add_scalar("iteration-time", 2.0 + 0.01 * step, step)
        writer.add_scalar("learning-rate", 1e-4, step)
    writer.close()
    out = tmp_path / "runs" / "tb-suite" / "cpt-fp8-s0"
    assert main(["import", str(tmp_path / "tb"), "--out", str(out), "--arm", "fp8", "--recipe", "te:blockwise"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 11))
    assert records[4]["loss"] == pytest.approx(2.5) and records[4]["step_time_s"] == pytest.approx(2.05)
    assert RunDir(out).read_manifest()["source_kind"] == "tensorboard"


def test_importing_a_file_without_megatron_lines_exits_2(tmp_path, capsys):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello\n")
    assert main(["import", str(bogus), "--out", str(tmp_path / "r")]) == 2
    assert "no Megatron 'iteration N/M" in capsys.readouterr().err
