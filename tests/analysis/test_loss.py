import numpy as np
import pytest

from harness.analysis.loss import ema, loss_parity, loss_verdict

STEPS = list(range(1, 61))
CURVE = [2.0 + 8.0 * np.exp(-s / 12.0) for s in STEPS]


def test_ema_of_a_constant_is_the_constant_from_the_first_step():
    assert ema([3.0, 3.0, 3.0], alpha=0.1) == pytest.approx([3.0, 3.0, 3.0])


def test_identical_curves_have_zero_error_and_parity():
    stats = loss_parity(STEPS, CURVE, STEPS, CURVE, warmup_steps=5)
    assert stats["mean_rel_error"] == 0.0 and stats["max_rel_error"] == 0.0
    assert stats["fraction_windows_under_bar"] == 1.0
    assert stats["steps_compared"] == 55 and stats["n_windows"] == 6
    assert loss_verdict(stats) == "parity"


def test_constant_one_percent_offset_is_measured_and_worse_than_the_bar():
    stats = loss_parity(STEPS, CURVE, STEPS, [v * 1.01 for v in CURVE])
    assert stats["mean_rel_error"] == pytest.approx(0.01)
    assert stats["max_rel_error"] == pytest.approx(0.01)
    assert stats["fraction_windows_under_bar"] == 0.0
    assert loss_verdict(stats) == "worse"


def test_warmup_steps_are_dropped_from_the_statistics():
    # A large gap only in the first 5 steps, then identical: the EMA still carries part of the
    # gap past step 5, so the gap must sit well before the cut for the error to vanish.
    cand = [v * (1.5 if s <= 2 else 1.0) for s, v in zip(STEPS, CURVE, strict=True)]
    with_warmup = loss_parity(STEPS, CURVE, STEPS, cand, warmup_steps=40, alpha=0.5)
    without = loss_parity(STEPS, CURVE, STEPS, cand, warmup_steps=0, alpha=0.5)
    assert with_warmup["steps"][0] == 41
    assert with_warmup["max_rel_error"] < 1e-9 < without["max_rel_error"]


def test_one_window_over_the_bar_is_inconclusive():
    cand = [v * (1.004 if 30 < s <= 40 else 1.0) for s, v in zip(STEPS, CURVE, strict=True)]
    stats = loss_parity(STEPS, CURVE, STEPS, cand, alpha=1.0)  # alpha 1: no smoothing
    assert 0.0 < stats["fraction_windows_under_bar"] < 1.0
    assert loss_verdict(stats) == "inconclusive"


def test_only_shared_finite_steps_are_compared():
    cand_steps = STEPS[:30]
    cand = list(CURVE[:30])
    cand[10] = None
    cand[11] = float("nan")
    stats = loss_parity(STEPS, CURVE, cand_steps, cand)
    assert stats["steps_compared"] == 28
    assert stats["candidate_final_loss"] == pytest.approx(CURVE[29])


def test_no_shared_steps_gives_null_statistics():
    stats = loss_parity([1, 2], [3.0, 2.0], [5, 6], [3.0, 2.0])
    assert stats["mean_rel_error"] is None and stats["steps_compared"] == 0
    assert loss_verdict(stats) == "inconclusive"


def test_signed_error_says_which_side_fp8_ran_on():
    above = loss_parity(STEPS, CURVE, STEPS, [v * 1.01 for v in CURVE])
    below = loss_parity(STEPS, CURVE, STEPS, [v * 0.99 for v in CURVE])
    assert above["mean_signed_rel_error"] == pytest.approx(0.01)
    assert below["mean_signed_rel_error"] == pytest.approx(-0.01)
    assert above["mean_rel_error"] == pytest.approx(below["mean_rel_error"])  # the unsigned error can't tell them apart
    assert loss_parity([1, 2], [3.0, 2.0], [5, 6], [3.0, 2.0])["mean_signed_rel_error"] is None
