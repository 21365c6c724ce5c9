"""Bad input through the real front door, harness.cli.main: exit 2 and one message naming the file,
the field and the fix, without a traceback, and nothing trained. Field-level suite errors are also
unit-tested in tests/test_suite.py; data errors below the CLI in tests/train/test_train_data.py."""

from __future__ import annotations

import json

import pytest
from relkit import write_suite

from harness.analysis.synthetic import write_synthetic_suite
from harness.cli import main

RECIPE = '"emulated:block"'
PRESET = 'preset = "tiny"'

# id -> (command, line replacements, --set overrides, texts the one message must contain)
SUITE_CASES = {
    "malformed_toml": ("validate", [("seq_len = 32", "seq_len = ")], [], ["malformed TOML", "line 18", "fix the syntax"]),
    "misspelt_key": (
        "validate", [("seq_len = 32", "seq_length = 32")], [],
        ["stages.cpt.seq_length: unknown key; did you mean 'seq_len'?", "remove it or use one of"],
    ),
    "wrong_type": ("validate", [("seq_len = 32", 'seq_len = "long"')], [], ["stages.cpt.seq_len:", "valid integer", "(got 'long')"]),
    "zero_batch": (
        "validate", [("global_batch_size = 4", "global_batch_size = 0")], [],
        ["stages.cpt.global_batch_size: Input should be greater than 0 (got 0)"],
    ),
    "negative_seq_len": ("validate", [("seq_len = 32", "seq_len = -32")], [], ["stages.cpt.seq_len:", "greater than 0 (got -32)"]),
    "unknown_recipe": ("validate", [(RECIPE, '"te:blockwize"')], [], ["arms: arm 'fp8': unknown recipe", "did you mean 'te:blockwise'?"]),
    "batch_not_divisible": (
        "validate", [("micro_batch_size = 2", "micro_batch_size = 3")], [],
        ["stages.cpt.global_batch_size: 4 is not a multiple of micro_batch_size"],
    ),
    "bad_set": ("validate", [], ["stages.cpt.steps"], ["--set 'stages.cpt.steps': expected key.path=value"]),
    "te_recipe_on_cpu": (
        "run", [(RECIPE, '"te:blockwise"')], [],
        ["arms (fp8): te:blockwise needs an NVIDIA GPU", "use emulated:block on CPU", "nothing was trained"],
    ),
    "cuda_device_without_gpu": ("run", [('device = "cpu"', 'device = "cuda"')], [], ["topology.device = 'cuda'", "use 'auto' or 'cpu'"]),
    "missing_model_path": (
        "run", [(PRESET, 'path = "models/absent"')], [],
        ["model.path: path 'models/absent' does not exist", "--set model.path="],
    ),
    "unset_model_variable": (
        "run", [(PRESET, 'path = "${HARNESS_TEST_UNSET_MODEL}"')], [],
        ["model.path: environment variable HARNESS_TEST_UNSET_MODEL is not set", "export HARNESS_TEST_UNSET_MODEL="],
    ),
    "missing_data_path": (
        "run", [], ["stages.cpt.data.path=data/absent.jsonl"],
        ["stages.cpt.data.path: path 'data/absent.jsonl' does not exist", "--set stages.cpt.data.path="],
    ),
    "seq_len_beyond_max_positions": (
        "run", [], ["stages.cpt.seq_len=4096"],
        ["stages.cpt.seq_len: 4096 exceeds the model's max_position_embeddings (2048, preset 'tiny')", "lower seq_len"],
    ),
    "sft_rows_all_longer_than_seq_len": (
        "run", [], ["stages.cpt.kind=sft", "stages.cpt.data.path=builtin:arith-sft", "stages.cpt.seq_len=4"],
        ["data.path: all", "conversations of builtin:arith-sft are longer than seq_len=4; raise seq_len"],
    ),
    "beta_of_one": ("validate", [], ["stages.cpt.optim.betas=[0.9, 1.0]"], ["stages.cpt.optim.betas.1: Input should be less than 1 (got 1.0)"]),
    "negative_beta": ("run", [], ["stages.cpt.optim.betas=[-0.1, 0.95]"], ["stages.cpt.optim.betas.0:", "greater than or equal to 0 (got -0.1)"]),
    "empty_seeds": ("validate", [("seeds = [0]", "seeds = []")], [], ["seeds: list at least one seed, e.g. seeds = [0]"]),
    "duplicate_seeds": ("validate", [("seeds = [0]", "seeds = [0, 1, 0]")], [], ["seeds: seed 0 is listed 2 times", "list each seed once"]),
    "negative_seed": ("run", [("seeds = [0]", "seeds = [-1]")], [], ["seeds.0: Input should be greater than or equal to 0 (got -1)"]),
    "eval_samples_zero": ("validate", [], ["eval.benchmarks.arith.samples=0"], ["eval.benchmarks.arith.samples: Input should be greater than 0 (got 0)"]),
    # refused before training what compare, eval or the gate would refuse after it (preflight)
    "no_bf16_baseline_validate": ("validate", [('bf16 = "bf16"\n', "")], [], ["arms: no baseline arm with recipe 'bf16' (fp8 = 'emulated:block')", 'add it, e.g. bf16 = "bf16"']),
    "no_bf16_baseline_run": ("run", [('bf16 = "bf16"\n', "")], [], ["arms: no baseline arm with recipe 'bf16'", "nothing was trained"]),
    "two_bf16_arms_none_named_bf16": ("validate", [('bf16 = "bf16"', 'base = "bf16"\nbase2 = "bf16"')], [], ["arms: several arms use recipe 'bf16' (base, base2)", "name the baseline arm 'bf16'"]),
    "unknown_benchmark_validate": ("validate", [], ["eval.benchmarks.aime42.samples=1"], ["eval.benchmarks.aime42: unknown benchmark; did you mean 'aime2", "known: aime24, aime25, gpqa_diamond"]),
    "unknown_benchmark_run": ("run", [], ["eval.benchmarks.gpqa.samples=1"], ["eval.benchmarks.gpqa: unknown benchmark; did you mean 'gpqa_diamond'?"]),
    "no_gates": ("run", [("max_loss_rel_error = 0.5", "")], [], ["gates: none set, so `harness run` could end only in 'no verdict' (exit 2)", "add [gates]"]),
    "score_gate_without_benchmarks": ("validate", [("evaluate = false", "evaluate = true")], ["gates.max_score_drop=2"], ["gates.max_score_drop: stage cpt is evaluated but eval.benchmarks is empty", "can never pass"]),
    "control_gate_without_control_arm": ("validate", [], ["gates.max_loss_excess_over_control=0.01"], ["gates.max_loss_excess_over_control: no BF16 control arm", 'bf16-control = "bf16"']),
    "loss_gate_within_warm_up": ("validate", [], ["stages.cpt.steps=2"], ["gates.max_loss_rel_error: stages.cpt has 2 steps, all within warm-up (2:", "add steps"]),
    "speed_gate_without_timed_steps": ("validate", [], ["stages.cpt.steps=1", "gates.min_speedup=1.0", "stages.cpt.schedule.warmup_steps=0"], ["gates.min_speedup: stages.cpt has 1 steps and none is timed"]),
    "memory_gate_on_cpu": ("run", [], ["gates.max_memory_ratio=0.9"], ["gates.max_memory_ratio: runs on a CPU record no memory peaks", "run on a GPU or remove the gate"]),
    "fp8_arm_without_its_baseline": ("run", [], [], ["--arm fp8: its baseline run cpt-bf16-s0 is neither selected nor trained", "add --arm bf16"]),
    "benchmark_data_missing": (
        "run", [("evaluate = false", "evaluate = true")], ["eval.benchmarks.aime24.path=no-such-folder/aime24", "eval.backend=transformers", "gates.max_score_drop=5"],
        ["eval.benchmarks.aime24: no-such-folder/aime24: no data for benchmark 'aime24'", "harness data export aime24", "nothing was trained"],
    ),
    "vllm_not_installed": (
        "run", [("evaluate = false", "evaluate = true")], ["eval.benchmarks.arith.samples=1", "gates.max_score_drop=5"],
        ["eval.backend = 'vllm': 'harness-test-no-vllm' not found", "eval.backend = 'transformers'", "nothing was trained"],
    ),
}  # fmt: skip
EXTRA_ARGS = {"fp8_arm_without_its_baseline": ["--arm", "fp8"]}
ENV = {"vllm_not_installed": {"HARNESS_VLLM_COMMAND": "harness-test-no-vllm serve"}}

# the --set flag is the bad input there; the SFT data check runs in the trainer and names the data
NOT_NAMING_THE_SUITE = {"bad_set", "sft_rows_all_longer_than_seq_len"}


def _call(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def _assert_one_message(err: str, command: str, *texts: str) -> None:
    assert "Traceback" not in err, err
    assert err.count(f"harness {command}: ") == 1 and "(top level)" not in err, err
    for text in texts:
        assert text in err, f"{text!r} not in:\n{err}"


@pytest.mark.parametrize("case", SUITE_CASES)
def test_bad_suite_exits_2_with_one_message_naming_file_field_and_fix(case, tmp_path, corpus, capsys, monkeypatch):
    command, replace, overrides, texts = SUITE_CASES[case]
    for name, value in ENV.get(case, {}).items():
        monkeypatch.setenv(name, value)
    suite = write_suite(tmp_path, corpus, replace=replace)
    argv = [command, str(suite), *(x for kv in overrides for x in ("--set", kv)), *EXTRA_ARGS.get(case, [])]
    if command == "run":
        argv += ["--runs-dir", str(tmp_path / "runs"), "--report-dir", str(tmp_path / "report"), "--quiet"]
    code, err = _call(argv, capsys)
    assert code == 2
    _assert_one_message(err, command, *texts)
    if case not in NOT_NAMING_THE_SUITE:
        assert str(suite) in err
    assert not list(tmp_path.glob("runs/*/*/metrics.jsonl"))  # nothing trained


@pytest.mark.parametrize("command", ["validate", "plan", "run", "train"])
def test_a_suite_file_that_is_not_utf8_names_its_line(command, tmp_path, corpus, capsys):
    suite = write_suite(tmp_path, corpus)
    suite.write_bytes(suite.read_bytes().replace(b'name = "rel"', b'name = "rel"\ndescription = "caf\xe9"'))
    argv = [command, str(suite), *(["--run-id", "cpt-bf16-s0"] if command == "train" else [])]
    code, err = _call([*argv, *(["--runs-dir", str(tmp_path / "runs")] if command in ("run", "train") else [])], capsys)
    assert code == 2
    _assert_one_message(err, command, f'{suite}:2: not UTF-8 text (byte 0xe9 in: description = "caf\ufffd")',
                        "save the suite file as UTF-8")  # fmt: skip
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("content", "texts"),
    [
        ('{"content": "a document"}\n', ["has no column 'text'; columns present: content", "data column option"]),
        ("", ["is empty (0 bytes); point data.path at a file with rows"]),
        (b'{"text": "a fine document"}\n{"text": "caf\xe9 au lait"}\n',
         [':2: not UTF-8 text (byte 0xe9 in: {"text": "caf\ufffd au lait"})', "re-encode the file as UTF-8"]),
        ('{"text": 42}\n{"text": 7}\n', [":1: 'text' is int 42, not a string", "must be text (null skips the row)"]),
        ('{"text": ["a", "b"]}\n', [":1: 'text' is list ['a', 'b'], not a string"]),
    ],
    ids=["missing_column", "empty_file", "not_utf8", "text_a_number", "text_a_list"],
)  # fmt: skip
def test_bad_dataset_exits_2_naming_the_data_file(content, texts, tmp_path, corpus, capsys):
    data = tmp_path / "data.jsonl"
    data.write_bytes(content if isinstance(content, bytes) else content.encode())
    suite = write_suite(tmp_path, data)
    code, err = _call(["train", str(suite), "--run", "cpt-bf16-s0", "--runs-dir", str(tmp_path / "runs")], capsys)
    assert code == 2
    _assert_one_message(err, "train", f"data.path: {data}", *texts)


def test_compare_names_the_corrupt_metrics_line(tmp_path, capsys):
    suite_dir = write_synthetic_suite(tmp_path / "runs")
    metrics = suite_dir / "cpt-fp8-s0" / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    lines[4] = lines[4][:20]  # a torn line
    metrics.write_text("\n".join(lines) + "\n")
    code, err = _call(["compare", str(suite_dir)], capsys)
    assert code == 2
    _assert_one_message(err, "compare", f"{metrics}:5: corrupt line in metrics.jsonl", "re-run `harness train`")
    assert not (suite_dir / "parity.json").exists()


def test_compare_refuses_unmatched_arms_naming_the_differing_field(tmp_path, capsys):
    suite_dir = write_synthetic_suite(tmp_path / "runs")
    spec_file = suite_dir / "cpt-fp8-s0" / "spec.json"
    spec = json.loads(spec_file.read_text())
    spec["stage"]["seq_len"] *= 2
    spec_file.write_text(json.dumps(spec))
    code, err = _call(["compare", str(suite_dir)], capsys)
    assert code == 2
    _assert_one_message(
        err, "compare", f"{suite_dir / 'cpt-fp8-s0'} is not matched", "'stage.seq_len' differs (256 vs 128)", "re-run"
    )


@pytest.mark.parametrize("target", ["folder", "file"])
def test_gate_without_parity_json_exits_2_and_says_run_compare(target, tmp_path, capsys):
    suite_dir = tmp_path / "runs" / "rel"
    suite_dir.mkdir(parents=True)
    code, err = _call(["gate", str(suite_dir if target == "folder" else suite_dir / "parity.json")], capsys)
    assert code == 2
    _assert_one_message(err, "gate", f"{suite_dir / 'parity.json'}: not found", f"run `harness compare {suite_dir}`")
