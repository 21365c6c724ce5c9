"""harness.run_checks: which metrics.jsonl step sequences a finished run may have."""

from __future__ import annotations

import pytest

from harness.run_checks import metrics_line_problem, step_problem


@pytest.mark.parametrize("steps", [[], [1], [1, 2, 3, 4]])
def test_a_trained_runs_steps_once_each_in_order_pass(steps):
    assert step_problem(steps, every_step=True) is None


@pytest.mark.parametrize(
    ("steps", "index", "text"),
    [
        ([1, 2, 3, 1, 2], 3, "step 1 appears a second time (first at line 1)"),
        ([1, 2, 2, 3], 2, "step 2 appears a second time (first at line 2)"),
        ([1, 2, 4, 5], 2, "step 4 follows step 2: step 3 missing"),
        ([1, 2, 6], 2, "step 6 follows step 2: steps 3-5 missing"),
        ([2, 3], 0, "step 2 follows the start: step 1 missing"),
        ([1, 3, 2], 1, "step 3 follows step 1; step 2 comes later, at line 3 (out of order)"),
    ],
)
def test_the_first_repeated_missing_or_out_of_order_step_is_named(steps, index, text):
    assert step_problem(steps, every_step=True) == (index, text)


def test_an_imported_run_may_skip_steps_but_not_repeat_or_reorder_them():
    assert step_problem([10, 20, 30], every_step=False) is None
    assert step_problem([10, 20, 20], every_step=False) == (2, "step 20 appears a second time (first at line 2)")
    assert step_problem([10, 30, 20], every_step=False) == (2, "step 20 comes after step 30 (out of order)")


def test_line_numbers_say_where_a_repeated_step_first_was():
    assert step_problem([1, 1], every_step=True, lines=[4, 9]) == (1, "step 1 appears a second time (first at line 4)")


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"step": 1, "loss": 2.5, "tokens": 10, "mfu": None, "checkpoint": True}, None),
        ([1], "metrics line lacks a 'step' field"),
        ({"loss": 1.0}, "metrics line lacks a 'step' field"),
        ({"step": 0}, "field 'step' is 0, not a step number (1, 2, ...)"),
        ({"step": True}, "field 'step' is True, not a step number (1, 2, ...)"),
        ({"step": 2.0}, "field 'step' is 2.0, not a step number (1, 2, ...)"),
        ({"step": 1, "step_time_s": "fast"}, "field 'step_time_s' is 'fast', not a number or null"),
        ({"step": 1, "tokens": False}, "field 'tokens' is False, not a number or null"),
    ],
)
def test_a_metrics_line_keeps_the_contracts_types(record, problem):
    assert metrics_line_problem(record) == problem
