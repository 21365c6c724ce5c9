"""Plain progress lines: about one per 10% of the steps, with loss and tokens/s."""

from __future__ import annotations

from harness.telemetry.progress import ProgressDisplay, plain_mode


def test_quiet_mode_prints_a_line_every_tenth_of_the_steps(capsys):
    progress = ProgressDisplay(100, quiet=True, label="run")
    for step in range(1, 101):
        progress.update(step, loss=2.0, tokens_per_s=1234.0)
    progress.close()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10
    assert lines[0].startswith("[run] step 10/100 (10%)  loss 2.0000  1,234 tok/s")
    assert lines[-1].startswith("[run] step 100/100 (100%)")


def test_resumed_progress_counts_from_the_start_step(capsys):
    progress = ProgressDisplay(100, start_step=55, quiet=True)
    for step in range(56, 101):
        progress.update(step, loss=None, tokens_per_s=None)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split()[2] for line in lines] == ["60/100", "70/100", "80/100", "90/100", "100/100"]


def test_ci_environment_forces_plain_mode(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert plain_mode(quiet=False)
