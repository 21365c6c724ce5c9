import json
import math

import pytest
import torch
from trainkit import losses, prepare, specs, tiny_suite

import harness.train.trainer as trainer_module
from harness.errors import InvalidInput, RunFailed
from harness.train.trainer import train

# Relative tolerance between the bf16 and emulated:block loss curves of the tiny model, per step,
# over a 12-step run from identical weights and data (measured on this CPU: max 0.22% cpt, 0.42% sft).
PARITY_REL_TOL = 0.01


@pytest.fixture(scope="module")
def two_arms(tmp_path_factory, corpus):
    """cpt + sft for a bf16 and an emulated:block arm, trained once for the module."""
    runs = tmp_path_factory.mktemp("runs")
    suite = tiny_suite(str(corpus), arms={"bf16": "bf16", "fp8": "emulated:block"}, steps=12, sft=True)
    dirs, summaries = {}, {}
    for run_id, spec in specs(suite).items():
        dirs[run_id] = prepare(runs, spec)
        summaries[run_id] = train(spec, dirs[run_id], quiet=True)
    return suite, dirs, summaries


def test_a_run_writes_metrics_for_every_step_and_a_completed_summary(two_arms):
    _, dirs, summaries = two_arms
    records = dirs["cpt-bf16-s0"].read_metrics()
    assert [r["step"] for r in records] == list(range(1, 13))
    assert all(r["tokens"] == 4 * 32 for r in records)  # packed rows: every token is real
    assert [r["step"] for r in records if r["checkpoint"]] == [4, 8]
    assert summaries["cpt-bf16-s0"]["status"] == "completed" and summaries["cpt-fp8-s0"]["emulated"] is True
    assert records[-1]["loss"] < records[0]["loss"]


def test_final_checkpoint_is_a_hugging_face_folder_that_loads_and_generates(two_arms):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = two_arms[1]["sft-fp8-s0"].checkpoints / "final"
    model = AutoModelForCausalLM.from_pretrained(str(final), local_files_only=True)
    tok = AutoTokenizer.from_pretrained(str(final), local_files_only=True)
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "1 + 1?"}], tokenize=False, add_generation_prompt=True
    )
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] > ids.shape[1]
    assert tok.convert_tokens_to_ids("<|im_end|>") in model.generation_config.eos_token_id


def test_matched_arms_start_from_identical_weights_and_data(two_arms):
    _, dirs, _ = two_arms
    bf16, fp8 = losses(dirs["cpt-bf16-s0"]), losses(dirs["cpt-fp8-s0"])
    assert bf16[0] == pytest.approx(fp8[0], rel=1e-3)  # step 1: same init and batch, only FP8 rounding differs
    tokens = [[r["tokens"] for r in dirs[f"cpt-{arm}-s0"].read_metrics()] for arm in ("bf16", "fp8")]
    assert tokens[0] == tokens[1]


def test_bf16_and_emulated_block_loss_curves_agree_within_tolerance(two_arms):
    _, dirs, _ = two_arms
    for stage in ("cpt", "sft"):
        bf16, fp8 = losses(dirs[f"{stage}-bf16-s0"]), losses(dirs[f"{stage}-fp8-s0"])
        rel = [abs(a - b) / a for a, b in zip(bf16, fp8, strict=True)]
        assert max(rel) < PARITY_REL_TOL, (stage, rel)


def test_sft_stage_starts_from_the_cpt_stage_final_weights(two_arms):
    _, dirs, _ = two_arms
    manifest = json.loads(dirs["sft-bf16-s0"].manifest.read_text())
    assert manifest["status"] == "completed"
    sft = dirs["sft-bf16-s0"].read_metrics()
    assert all(r["tokens"] < 8 * 64 for r in sft)  # padded chat rows: only real tokens are counted


def test_a_finished_run_returns_its_summary_without_retraining(two_arms, monkeypatch):
    suite, dirs, summaries = two_arms
    monkeypatch.setattr("harness.train.trainer.build_data", lambda *a, **k: pytest.fail("retrained"))
    spec = specs(suite)["cpt-bf16-s0"]
    assert train(spec, dirs["cpt-bf16-s0"], quiet=True) == summaries["cpt-bf16-s0"]


def test_divergence_above_max_loss_fails_the_run_with_its_reason(tmp_path, corpus):
    spec = specs(tiny_suite(str(corpus), steps=3, divergence={"max_loss": 1.0}))["cpt-bf16-s0"]
    run_dir = prepare(tmp_path, spec)
    with pytest.raises(RunFailed, match=r"step 1: loss .* exceeds divergence.max_loss = 1.0"):
        train(spec, run_dir, quiet=True)
    manifest = run_dir.read_manifest()
    assert manifest["status"] == "failed" and "max_loss" in manifest["reason"]
    assert run_dir.read_summary()["status"] == "failed"
    assert not (run_dir.checkpoints / "final").exists()


def test_check_divergence_catches_nan_and_spikes():
    from types import SimpleNamespace

    from harness.train.trainer import check_divergence

    cfg = SimpleNamespace(max_loss=None, spike_factor=2.0)
    with pytest.raises(RunFailed, match="nan"):
        check_divergence(1, float("nan"), [], cfg)
    recent = []
    for step, loss in enumerate([3.0, 3.1, 2.9, 3.0, 3.0], 1):
        check_divergence(step, loss, recent, cfg)
    with pytest.raises(RunFailed, match="spiked"):
        check_divergence(6, 6.5, recent, cfg)


def test_a_stage_whose_predecessor_has_no_final_checkpoint_is_invalid_input(tmp_path, corpus):
    spec = specs(tiny_suite(str(corpus), sft=True))["sft-bf16-s0"]
    with pytest.raises(InvalidInput, match="train stage cpt first"):
        train(spec, prepare(tmp_path, spec), quiet=True)


@pytest.mark.parametrize("recipe", ["bf16", "emulated:block"])
def test_bf16_master_weights_keep_parameters_and_optimiser_states_in_bf16(tmp_path, corpus, recipe, monkeypatch):
    suite = tiny_suite(str(corpus), arms={"a": recipe}, steps=6, checkpoint_every=3)
    suite = suite.model_copy(update={"model": suite.model.model_copy(update={"master_dtype": "bfloat16"})})
    spec = specs(suite)["cpt-a-s0"]
    run_dir = prepare(tmp_path, spec)
    seen, real_save = {}, trainer_module.save_checkpoint

    def save(folder, step, model, optimizer, *rest):
        seen["params"] = {p.dtype for p in model.parameters()}
        seen["states"] = {t.dtype for st in optimizer.state.values() for t in st.values() if t.dim() > 0}
        return real_save(folder, step, model, optimizer, *rest)

    monkeypatch.setattr(trainer_module, "save_checkpoint", save)
    train(spec, run_dir, quiet=True)
    assert seen["params"] == {torch.bfloat16} and seen["states"] == {torch.bfloat16}
    curve = losses(run_dir)
    assert all(math.isfinite(x) for x in curve) and curve[-1] < curve[0]


def test_harness_train_refuses_a_seq_len_beyond_the_models_positions_before_training(tmp_path, corpus):
    # What a launcher's rank runs directly, without `harness run`'s preflight.
    suite = tiny_suite(str(corpus), steps=2)
    stage = suite.stages["cpt"].model_copy(update={"seq_len": 4096})  # the tiny preset has 2048 positions
    spec = specs(suite.model_copy(update={"stages": {"cpt": stage}}))["cpt-bf16-s0"]
    run_dir = prepare(tmp_path, spec)
    with pytest.raises(InvalidInput, match=r"stages.cpt.seq_len: 4096 exceeds the model's max_position_embeddings"):
        train(spec, run_dir, quiet=True)
    assert not run_dir.metrics.exists()


def test_activation_checkpointing_recomputes_without_changing_the_losses(tmp_path, corpus, monkeypatch):
    from transformers.models.qwen2 import modeling_qwen2

    calls, mlp_forward = [0], modeling_qwen2.Qwen2MLP.forward

    def counting_forward(self, x):
        calls[0] += 1
        return mlp_forward(self, x)

    monkeypatch.setattr(modeling_qwen2.Qwen2MLP, "forward", counting_forward)
    suite = tiny_suite(str(corpus), steps=4, checkpoint_every=None)
    ac = suite.model_copy(update={"model": suite.model.model_copy(update={"activation_checkpointing": True})})
    curves, mlp_calls = [], []
    for name, s in (("plain", suite), ("ac", ac)):
        spec = specs(s)["cpt-bf16-s0"]
        run_dir = prepare(tmp_path / name, spec)
        calls[0] = 0
        train(spec, run_dir, quiet=True)
        curves.append(losses(run_dir))
        mlp_calls.append(calls[0])
    assert curves[1] == pytest.approx(curves[0], rel=1e-6)
    assert mlp_calls[1] > mlp_calls[0]  # the backward pass ran the layers' forward again


def test_chunked_loss_trains_the_same_curve_as_hugging_faces_loss(tmp_path, corpus):
    curves = {}
    for chunk in (None, 24):  # 24 does not divide the 2 x 32 tokens of a micro-batch
        suite = tiny_suite(str(corpus), steps=5, checkpoint_every=None)
        suite = suite.model_copy(update={"model": suite.model.model_copy(update={"loss_chunk_tokens": chunk})})
        spec = specs(suite)["cpt-bf16-s0"]
        run_dir = prepare(tmp_path / str(chunk), spec)
        train(spec, run_dir, quiet=True)
        curves[chunk] = losses(run_dir)
    assert curves[24] == pytest.approx(curves[None], rel=1e-4)


def _run_failing_at_step_3(tmp_path, corpus, monkeypatch, error: BaseException):
    """A six-step run (spec, run folder) whose step 3 raises `error` instead of training."""
    spec = specs(tiny_suite(str(corpus), steps=6, checkpoint_every=None))["cpt-bf16-s0"]
    run_dir = prepare(tmp_path, spec)
    real_step = trainer_module.train_step

    def step(*args):
        if len(run_dir.read_metrics()) == 2:
            raise error
        return real_step(*args)

    monkeypatch.setattr(trainer_module, "train_step", step)
    return spec, run_dir


def test_a_second_ctrl_c_while_the_run_records_its_interruption_does_not_leave_it_running(
    tmp_path, corpus, monkeypatch
):
    # Ctrl-C in a terminal reaches `harness train` twice: from the terminal and relayed by `harness run`.
    import os
    import signal

    from harness.telemetry.recorder import Telemetry

    spec, run_dir = _run_failing_at_step_3(tmp_path, corpus, monkeypatch, KeyboardInterrupt)  # the first Ctrl-C
    real_finish = Telemetry.finish

    def finish(self, status, reason=None):
        os.kill(os.getpid(), signal.SIGINT)  # the second one, while the run records the first
        return real_finish(self, status, reason)

    monkeypatch.setattr(Telemetry, "finish", finish)
    with pytest.raises(KeyboardInterrupt):
        train(spec, run_dir, quiet=True)
    manifest = run_dir.read_manifest()
    assert manifest["status"] == "interrupted" and manifest["reason"] == "interrupted by the user"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C works again afterwards


def test_a_ctrl_c_handled_while_a_failed_collective_is_recorded_ends_the_run_interrupted(tmp_path, corpus, monkeypatch):
    # Ctrl-C under torchrun: a peer rank leaves first, so this rank's collective fails (gloo: "Connection
    # closed by peer"), and its own SIGINT is handled only as it starts to record that failure.
    spec, run_dir = _run_failing_at_step_3(tmp_path, corpus, monkeypatch, RuntimeError("Connection closed by peer"))
    real_held = trainer_module.signals_held

    def held_after_the_interrupt():
        monkeypatch.setattr(trainer_module, "signals_held", real_held)
        raise KeyboardInterrupt  # the pending SIGINT's handler, run as the recording begins

    monkeypatch.setattr(trainer_module, "signals_held", held_after_the_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(spec, run_dir, quiet=True)
    manifest = run_dir.read_manifest()
    assert manifest["status"] == "interrupted" and manifest["reason"] == "interrupted by the user"
