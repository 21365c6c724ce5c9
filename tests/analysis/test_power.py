"""The smallest equivalence margin a design can resolve, hand-computed, and what `harness plan` says of it."""

import math

import pandas as pd
import pytest

from harness.analysis.power import Z95, observed_resolvable_margin, planned_margin, resolvable_margin
from harness.cli import main


def test_resolvable_margin_is_the_expected_ci_half_width_under_no_difference():
    # 30 problems, k = 32, every sample a coin flip: se = sqrt(2 * 0.25 / 960) of a fraction.
    assert resolvable_margin(0.25, 30, 32) == pytest.approx(100 * Z95 * math.sqrt(0.5 / 960))
    assert planned_margin(30, 32) == pytest.approx(4.47, abs=0.01)  # AIME at InfiR2's k: above a 3-point margin
    assert planned_margin(120, 32) == pytest.approx(planned_margin(30, 32) / 2)  # 4x the problems, half the width


def test_the_observed_variance_pools_both_arms_per_problem():
    # Problem a: always solved (no variance); problem b: half the samples (variance 0.25 * 4/3 over 4 samples).
    base = pd.DataFrame({"problem_id": ["a", "a", "b", "b"], "score": [1.0, 1.0, 1.0, 0.0]})
    cand = pd.DataFrame({"problem_id": ["a", "a", "b", "b"], "score": [1.0, 1.0, 0.0, 1.0]})
    mean_variance = (0.0 + 1 / 3) / 2
    assert observed_resolvable_margin(base, cand, k=2) == pytest.approx(resolvable_margin(mean_variance, 2, 2))


def test_plan_says_before_any_run_whether_the_margin_can_be_reached(tmp_path, capsys):
    suite = tmp_path / "s.toml"
    suite.write_text(open("suites/smoke.toml").read())
    assert main(["plan", str(suite), "--set", "eval.margin_points=3", "--set", "eval.benchmarks.arith.limit=30"]) == 0
    out = capsys.readouterr().out
    assert "arith: 30 problems x" in out and "is below it" in out
