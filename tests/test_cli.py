"""The command line: exit codes and one-line errors."""

from __future__ import annotations

import subprocess
import sys

from harness.cli import COMMANDS, main


def test_validate_ok_and_malformed(tmp_path, capsys):
    assert main(["validate", "suites/smoke.toml"]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[model]\npreset = "huge"\n')
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "model.preset" in err and "Traceback" not in err


def test_validate_reports_missing_local_paths(tmp_path, capsys):
    code = main(["validate", "suites/smoke.toml", "--set", "stages.cpt.data.path=/nonexistent/corpus.jsonl"])
    assert code == 2
    assert "stages.cpt.data.path" in capsys.readouterr().err


def test_plan_lists_every_run(capsys):
    assert main(["plan", "suites/smoke.toml"]) == 0
    out = capsys.readouterr().out
    for run_id in ("cpt-bf16-s0", "cpt-fp8-s0", "sft-bf16-s0", "sft-fp8-s0"):
        assert run_id in out


def test_every_design_command_is_registered():
    design = {"validate", "plan", "run", "train", "eval", "compare", "report", "gate", "history", "import", "launch"}
    assert design <= set(COMMANDS)


def test_console_script_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "harness.cli", "--help"], capture_output=True, text=True, check=True)
    assert "validate" in out.stdout and "gate" in out.stdout


def test_unknown_command_exits_2():
    assert main(["frobnicate"]) == 2


def test_hugging_face_progress_bars_are_off_under_the_harness_command():
    code = (
        "import os; os.environ.pop('HF_HUB_DISABLE_PROGRESS_BARS', None)\n"
        "from harness.cli import main; main(['validate', 'suites/smoke.toml'])\n"
        "import transformers; print(transformers.utils.logging.is_progress_bar_enabled())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"
