"""Damaged files in a run folder, the results index and import sources, through harness.cli.main:
exit 2 and one message naming the file (and line) and the fix, no traceback. The suite's runs are
synthetic (harness.analysis.synthetic): real files of the contract, made-up numbers."""

from __future__ import annotations

import json

import pytest

from harness.analysis.synthetic import write_synthetic_suite
from harness.cli import main

FP8 = "cpt-fp8-s0"
GATE = ["--max-loss-rel-error", "0.5"]


def _lines(path, edit):
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


def _swap(lines, a, b):
    lines[a], lines[b] = lines[b], lines[a]
    return lines


# id -> (file under the fp8 run, how to damage it, what `harness compare` must say after "<file>")
RUN_FILE_CASES = {
    "spec_not_json": ("spec.json", lambda p: p.write_text("{"), ["corrupt JSON", "delete the run folder"]),
    "spec_not_an_object": ("spec.json", lambda p: p.write_text("[1, 2]"), [": not a JSON object (found an array)"]),
    "spec_not_utf8": ("spec.json", lambda p: p.write_bytes(b'{"suite": "caf\xe9"}'), [":1: not UTF-8 text (byte 0xe9"]),
    "spec_missing_field": (
        "spec.json", lambda p: p.write_text(json.dumps({k: v for k, v in json.loads(p.read_text()).items() if k != "stage"})),
        [": invalid spec.json: stage: Field required", "`harness run` / `harness train`"],
    ),
    "spec_wrong_type": (
        "spec.json", lambda p: p.write_text(p.read_text().replace('"seed": 0', '"seed": "zero"')),
        [": invalid spec.json: seed: Input should be a valid integer"],
    ),
    "manifest_not_an_object": ("manifest.json", lambda p: p.write_text('"completed"'), [": not a JSON object (found a string)"]),
    "summary_not_an_object": ("summary.json", lambda p: p.write_text("null"), [": not a JSON object (found null)"]),
    "metrics_line_not_utf8": (
        "metrics.jsonl", lambda p: p.write_bytes(p.read_bytes() + b'{"step": 61, "loss": "\xff"}\n'),
        [":61: not UTF-8 text (byte 0xff", "re-run `harness train`"],
    ),
    "metrics_step_not_a_number": (
        "metrics.jsonl", lambda p: _lines(p, lambda ls: [ls[0].replace('"step": 1', '"step": "1"'), *ls[1:]]),
        [":1: field 'step' is '1', not a step number"],
    ),
    "metrics_loss_not_a_number": (
        "metrics.jsonl", lambda p: _lines(p, lambda ls: [*ls[:4], json.dumps({**json.loads(ls[4]), "loss": "low"}), *ls[5:]]),
        [":5: field 'loss' is 'low', not a number or null"],
    ),
    # a finished run's steps: each once, in order, as many as summary.json counts (and stage.steps plans)
    "metrics_duplicated_steps": (
        "metrics.jsonl", lambda p: _lines(p, lambda ls: ls[:10] + ls[:10] + ls[10:]),
        [":11: step 1 appears a second time (first at line 1)", "two processes wrote the folder at once"],
    ),
    "metrics_missing_step": ("metrics.jsonl", lambda p: _lines(p, lambda ls: ls[:6] + ls[7:]), [":7: step 8 follows step 6: step 7 missing"]),
    "metrics_out_of_order": ("metrics.jsonl", lambda p: _lines(p, lambda ls: _swap(ls, 3, 4)), [":4: step 5 follows step 3; step 4 comes later, at line 5 (out of order)"]),
    "metrics_fewer_than_summary": (
        "metrics.jsonl", lambda p: _lines(p, lambda ls: ls[:20]), [": holds 20 steps but", "summary.json says the run had 60 ('steps')"],
    ),
    "metrics_ends_before_stage_steps": (
        "summary.json", lambda p: (p.write_text(p.read_text().replace('"steps": 60', '"steps": 20')), _lines(p.with_name("metrics.jsonl"), lambda ls: ls[:20])),
        ["metrics.jsonl: ends at step 20 but the run is marked completed", "plans 60 (stage.steps)"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", RUN_FILE_CASES)
def test_compare_refuses_a_damaged_run_file_naming_it_and_the_gate_never_passes(case, tmp_path, capsys):
    name, damage, texts = RUN_FILE_CASES[case]
    suite_dir = write_synthetic_suite(tmp_path / "runs")
    assert main(["compare", str(suite_dir)]) == 0 and main(["gate", str(suite_dir), *GATE]) == 0  # healthy first
    capsys.readouterr()
    damage(suite_dir / FP8 / name)
    assert main(["compare", str(suite_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("harness compare: ") == 1 and "Traceback" not in err, err
    named = suite_dir / FP8 / ("metrics.jsonl" if case == "metrics_ends_before_stage_steps" else name)
    assert str(named) in err, err
    for text in texts:
        expected = f"{named}{text}" if text.startswith(":") else text  # file:line, or the file then this
        assert expected in err, f"{expected!r} not in:\n{err}"
    assert main(["gate", str(suite_dir), *GATE]) == 2  # never 0 on a run compare refused
    capsys.readouterr()


def test_an_imported_run_may_skip_steps_but_not_repeat_them(tmp_path, capsys):
    log = tmp_path / "megatron.log"
    log.write_text("".join(f" iteration {s}/ 30 | lm loss: {3 - s / 100:.4f} | elapsed time per iteration (ms): "
                           f"{1000 + s} | global batch size: 8 |\n" for s in range(10, 31, 10)))  # fmt: skip
    suite_dir = tmp_path / "runs" / "mega"
    for arm, recipe in (("bf16", "bf16"), ("fp8", "te:blockwise")):
        argv = ["import", str(log), "--out", str(suite_dir / f"cpt-{arm}-s0"), "--arm", arm, "--recipe", recipe]
        assert main(argv) == 0
    assert main(["compare", str(suite_dir), "--no-index"]) == 0  # steps 10, 20, 30: Megatron's log interval
    metrics = suite_dir / "cpt-fp8-s0" / "metrics.jsonl"
    _lines(metrics, lambda ls: [ls[0], *ls])
    capsys.readouterr()
    assert main(["compare", str(suite_dir), "--no-index"]) == 2
    err = capsys.readouterr().err
    assert f"{metrics}:2: step 10 appears a second time (first at line 1)" in err and "`harness import`" in err, err


@pytest.mark.parametrize("command", ["compare", "history", "gate"])
def test_a_results_index_that_is_not_sqlite_is_named_with_the_fix(command, tmp_path, capsys):
    suite_dir = write_synthetic_suite(tmp_path / "runs")
    assert main(["compare", str(suite_dir), "--no-index"]) == 0
    index = tmp_path / "runs" / "index.sqlite"
    index.write_bytes(b"not a database at all, just bytes " * 40)
    capsys.readouterr()
    argv = {"compare": [str(suite_dir)], "history": ["--runs-dir", str(index.parent)], "gate": [str(suite_dir), *GATE]}
    assert main([command, *argv[command]]) == 2
    err = capsys.readouterr().err
    assert err.count(f"harness {command}: ") == 1 and "Traceback" not in err, err
    assert f"{index}: not a usable results index (file is not a database)" in err
    assert f"mv {index} {index}.broken" in err


@pytest.mark.parametrize("case", ["out_is_a_file", "out_holds_a_trained_run", "out_name_unsafe", "suite_name_unsafe"])
def test_import_refuses_an_out_it_must_not_write(case, tmp_path, capsys):
    log = tmp_path / "megatron.log"
    log.write_text(" iteration 1/ 1 | lm loss: 3.0 | elapsed time per iteration (ms): 900 |\n")
    suite_dir = write_synthetic_suite(tmp_path / "runs")
    out = {"out_is_a_file": log, "out_holds_a_trained_run": suite_dir / FP8,
           "out_name_unsafe": suite_dir / "my run", "suite_name_unsafe": tmp_path / "my runs" / "cpt-x-s0"}[case]  # fmt: skip
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert main(["import", str(log), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    expected = {
        "out_is_a_file": f"--out {log}: is a file; pass the run folder to write",
        "out_holds_a_trained_run": f"--out {out}: holds a run of status 'completed', not an earlier import",
        "out_name_unsafe": "--out (its folder name is the run id): 'my run' is not a safe name",
        "suite_name_unsafe": "--suite (default: the name of --out's parent folder): 'my runs' is not a safe name",
    }[case]
    assert expected in err and err.count("harness import: ") == 1 and "Traceback" not in err, err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_import_of_an_unreadable_log_names_it(tmp_path, capsys):
    log = tmp_path / "megatron.log"
    log.write_bytes(b"\xff\xfe garbage with no iteration lines\n")
    assert main(["import", str(log), "--out", str(tmp_path / "runs" / "m" / "cpt-bf16-s0")]) == 2
    err = capsys.readouterr().err
    assert f"{log}: no Megatron 'iteration N/M | ...' lines found" in err and "Traceback" not in err, err


@pytest.mark.parametrize(("flag", "value", "text"), [("--samples", "0", "--samples 0: Input should be greater than 0"),
                                                     ("--top-p", "1.5", "--top-p 1.5: Input should be less than or equal to 1")])  # fmt: skip
def test_eval_flags_out_of_range_name_the_flag(flag, value, text, tmp_path, capsys):
    suite_dir = write_synthetic_suite(tmp_path / "runs")
    assert main(["eval", str(suite_dir / FP8), "--bench", "arith", flag, value]) == 2
    err = capsys.readouterr().err
    assert text in err and err.count("harness eval: ") == 1 and "Traceback" not in err, err
