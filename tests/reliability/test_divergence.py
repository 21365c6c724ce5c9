"""A diverging arm (loss above [divergence] max_loss, or NaN from an absurd learning rate) ends with
status failed and its reason in manifest.json; `harness run` exits 3, the report shows the failed
arm with its reason, and `harness gate` fails (exit 1, never 0).

Divergence settings and the learning rate are matched fields (both arms share them), so a suite
cannot make the FP8 arm alone diverge: both arms fail here. A single failed candidate against a
healthy baseline is tests/analysis/test_compare.py and tests/test_gate.py."""

from __future__ import annotations

import pytest
from relkit import write_suite

from harness.cli import main
from harness.store import RunDir


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ("divergence.max_loss=0.001", "step 1: loss 8.371 exceeds divergence.max_loss = 0.001"),
        ("stages.cpt.optim.lr=1e30", "(diverged)"),  # NaN a few steps in
    ],
)
def test_a_diverged_arm_fails_the_run_the_report_and_the_gate(tmp_path, corpus, capsys, override, reason):
    suite = write_suite(tmp_path, corpus)  # gated on max_loss_rel_error
    runs, report = tmp_path / "runs", tmp_path / "report"
    argv = ["run", str(suite), "--set", override, "--runs-dir", str(runs), "--report-dir", str(report), "--quiet"]
    assert main(argv) == 3
    err = capsys.readouterr().err
    for arm in ("bf16", "fp8"):
        manifest = RunDir(runs / "rel" / f"cpt-{arm}-s0").read_manifest()
        assert manifest["status"] == "failed" and reason in manifest["reason"]
        assert f"run failed: cpt-{arm}-s0: {manifest['reason']}" in err
        assert not (runs / "rel" / f"cpt-{arm}-s0" / "checkpoints" / "final").exists()
    html = (report / "index.html").read_text()
    assert "cpt-fp8-s0 failed: " in html and reason in html
    assert main(["gate", str(runs / "rel")]) == 1
    assert "gates: FAILED" in capsys.readouterr().out
