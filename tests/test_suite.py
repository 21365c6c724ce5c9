"""Suite loading: validation messages, variables, overrides, planning and fingerprints."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InvalidInput
from harness.suite import load_suite, plan, unresolved_variables

SUITES = Path(__file__).parent.parent / "suites"

MINIMAL = """
name = "mini"
[model]
preset = "tiny"
[arms]
bf16 = "bf16"
fp8 = "emulated:block"
[stages.cpt]
kind = "cpt"
data = { path = "builtin:stdlib" }
seq_len = 32
global_batch_size = 4
micro_batch_size = 2
steps = 3
optim = { lr = 1e-3 }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "name", ["smoke", "parity-1.5b", "parity-7b", "gpu-1.5b", "gpu-7b", "gpu-sft-1.5b", "verdict-1.5b"]
)
def test_shipped_suites_validate_and_plan_without_cluster_paths(name, monkeypatch):
    for var in ("HARNESS_MODEL_PATH", "HARNESS_CPT_DATA", "HARNESS_SFT_DATA", "HARNESS_EVAL_DATA"):
        monkeypatch.delenv(var, raising=False)
    suite = load_suite(SUITES / f"{name}.toml", require_env=False)
    runs = plan(suite)
    assert {r.arm for r in runs} == set(suite.arms)
    assert len(runs) == len(suite.arms) * len(suite.stages) * len(suite.seeds)


def test_parity_suites_carry_infir2_recipe():
    suite = load_suite(SUITES / "parity-7b.toml", require_env=False)
    cpt, sft = suite.stages["cpt"], suite.stages["sft"]
    assert (cpt.optim.lr, cpt.optim.min_lr, cpt.schedule.kind, cpt.optim.weight_decay) == (1e-4, 1e-5, "wsd", 0.1)
    assert (cpt.seq_len, cpt.global_batch_size, cpt.optim.betas, cpt.optim.grad_clip) == (32768, 128, (0.9, 0.95), 1.0)
    assert (sft.optim.lr, sft.schedule.kind, sft.schedule.warmup_fraction, sft.optim.weight_decay) == (
        2e-5,
        "cosine",
        0.05,
        0.0,
    )
    assert (sft.epochs, sft.global_batch_size, sft.seq_len) == (5, 64, 32768)
    assert suite.arms == {"bf16": "bf16", "fp8": "te:blockwise"}


def test_unknown_key_names_file_field_and_closest_name(tmp_path):
    path = write(tmp_path, MINIMAL.replace("optim = { lr = 1e-3 }", "optim = { lr = 1e-3, weight_decai = 0.1 }"))
    with pytest.raises(InvalidInput) as err:
        load_suite(path)
    message = str(err.value)
    assert str(path) in message
    assert "stages.cpt.optim.weight_decai" in message
    assert "did you mean 'weight_decay'" in message


def test_unknown_recipe_suggests_the_registered_one(tmp_path):
    path = write(tmp_path, MINIMAL.replace('"emulated:block"', '"te:blockwize"'))
    with pytest.raises(InvalidInput, match="did you mean 'te:blockwise'"):
        load_suite(path)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("seq_len = 32", "seq_len = 0", "stages.cpt.seq_len"),
        ("seq_len = 32", 'seq_len = "long"', "stages.cpt.seq_len"),
        ("micro_batch_size = 2", "micro_batch_size = 3", "global_batch_size"),
        ("steps = 3", "", "steps or epochs"),
    ],
)
def test_bad_values_name_the_field(tmp_path, old, new, field):
    with pytest.raises(InvalidInput, match=field.replace(".", r"\.")):
        load_suite(write(tmp_path, MINIMAL.replace(old, new)))


def test_malformed_toml_names_the_file(tmp_path):
    path = write(tmp_path, MINIMAL + "\n[model\n")
    with pytest.raises(InvalidInput, match=f"{path}: malformed TOML"):
        load_suite(path)


def test_environment_variables_and_defaults(tmp_path, monkeypatch):
    text = MINIMAL.replace('"builtin:stdlib"', '"${MY_DATA:-builtin:stdlib}"').replace(
        'preset = "tiny"', 'preset = "tiny"\npath = "${MY_MODEL}"'
    )
    path = write(tmp_path, text)
    monkeypatch.delenv("MY_MODEL", raising=False)
    monkeypatch.delenv("MY_DATA", raising=False)
    assert unresolved_variables(path) == ["MY_MODEL"]
    with pytest.raises(InvalidInput, match="MY_MODEL is not set.*--set model.path"):
        load_suite(path)
    monkeypatch.setenv("MY_MODEL", "/models/x")
    suite = load_suite(path)
    assert suite.model.path == "/models/x"
    assert suite.stages["cpt"].data.path == "builtin:stdlib"


def test_overrides_parse_toml_values_and_bare_strings(tmp_path):
    suite = load_suite(
        write(tmp_path, MINIMAL), ["stages.cpt.steps=7", "model.path=/models/Qwen2.5-7B", "seeds=[1, 2]"]
    )
    assert suite.stages["cpt"].steps == 7
    assert suite.model.path == "/models/Qwen2.5-7B"
    assert [r.seed for r in plan(suite)] == [1, 1, 2, 2]


def test_an_override_of_null_removes_the_key_so_its_default_applies(tmp_path):
    suite = load_suite(write(tmp_path, MINIMAL), ["stages.cpt.checkpoint_every=null", "stages.cpt.steps=7"])
    assert suite.stages["cpt"].checkpoint_every is None and suite.stages["cpt"].steps == 7
    sft = load_suite(SUITES / "gpu-sft-1.5b.toml", ["stages.sft.global_batch_tokens=null", "stages.sft.global_batch_size=4",
                                                    "stages.sft.packing=false"])  # fmt: skip
    assert sft.stages["sft"].global_batch_size == 4 and not sft.stages["sft"].packed


def test_matched_arms_share_a_fingerprint_and_stages_differ():
    suite = load_suite(SUITES / "smoke.toml")
    runs = {r.run_id: r for r in plan(suite)}
    assert runs["cpt-bf16-s0"].fingerprint == runs["cpt-fp8-s0"].fingerprint
    assert runs["cpt-bf16-s0"].fingerprint != runs["sft-bf16-s0"].fingerprint
    assert runs["sft-fp8-s0"].init_from_run == "cpt-fp8-s0"


def test_init_from_must_name_an_earlier_stage(tmp_path):
    text = MINIMAL + MINIMAL[MINIMAL.index("[stages.cpt]") :].replace("[stages.cpt]", "[stages.sft]").replace(
        'kind = "cpt"', 'kind = "sft"\ninit_from = "later"'
    )
    with pytest.raises(InvalidInput, match="init_from.*not an earlier stage"):
        load_suite(write(tmp_path, text))
