"""The W&B step logger, offline: what the run folder holds, resume after kill -9, rank 0 only, a missing wandb."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fakes import FakeNvml, fake_cuda, make_spec

from harness.cli import main
from harness.errors import InvalidInput
from harness.store import RunDir
from harness.suite import TelemetryConfig
from harness.telemetry import Telemetry
from harness.telemetry.wandb_logger import read_state, wandb_mode
from harness.telemetry.wandb_offline import read_wandb_run

ROOT = Path(__file__).parents[2]
INSTALL = "pip install 'fp8-parity-harness[wandb]'"


def _telemetry(run, spec, device="cpu", **kw):
    return Telemetry(run, spec, device=device, flops_per_token=1e6, total_steps=6, quiet=True, **kw)


def _train(tel, steps, loss=lambda step: 4.0 / step, checkpoint_at=()):
    for step in steps:
        with tel.step(step) as rec:
            rec.update(loss=loss(step), lr=1e-3, grad_norm=0.5, tokens=64)
        if step in checkpoint_at:
            tel.mark_checkpoint(step)


def _history(run: RunDir, key: str) -> dict[int, float]:
    return {step: row[key] for step, row in read_wandb_run(run.path).history.items() if key in row}


def test_offline_run_holds_the_metrics_history_identity_and_summary(tmp_path, monkeypatch):
    fake_cuda(monkeypatch)
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml())
    spec = make_spec(loggers=("wandb",), recipe="emulated:block")
    run = RunDir(tmp_path / spec.run_id)
    tel = _telemetry(run, spec, device=torch.device("cuda", 0))
    tel.start()
    for step in range(1, 5):
        with tel.step(step) as rec:
            rec.update(loss=4.0 / step, lr=1e-3, grad_norm=0.5, tokens=64)
        tel._sampler.sample()  # a sample between steps, instead of waiting for the thread
    summary = tel.finish("completed")

    wb = read_wandb_run(run.path)
    assert wb.run_id == read_state(run)["id"] and len(wb.folders) == 1
    assert wb.folders[0].parent == run.path / "wandb" and wb.folders[0].name.startswith("offline-run-")
    assert (wb.project, wb.group, wb.job_type, wb.name) == ("fp8-parity-harness", "tel", "cpt", "cpt-a-s0")
    assert set(wb.tags) == {"arm:a", "recipe:emulated:block", "stage:cpt", "seed:0",
                            f"fingerprint:{spec.fingerprint}", "emulated"}  # fmt: skip
    assert {k: wb.config[k] for k in ("arm", "recipe", "stage", "seed", "fingerprint", "emulated")} == {
        "arm": "a", "recipe": "emulated:block", "stage": "cpt", "seed": 0, "fingerprint": spec.fingerprint,
        "emulated": True,
    }  # fmt: skip
    records = run.read_metrics()
    assert wb.steps() == [r["step"] for r in records] == [1, 2, 3, 4]
    for key in ("loss", "lr", "grad_norm", "tokens", "step_time_s", "tokens_per_s", "mfu", "peak_alloc_bytes",
                "time_s"):  # fmt: skip
        assert _history(run, f"train/{key}") == {r["step"]: r[key] for r in records}, key
    memory = _history(run, "nvml/memory_used_bytes")
    assert sorted(memory) == [1, 2, 3, 4] and memory[1] >= 1 << 30
    assert wb.summary["summary/status"] == "completed"
    assert wb.summary["summary/step_time_s/median"] == summary["step_time_s"]["median"]
    assert wb.summary["summary/peak_alloc_bytes"] == summary["peak_alloc_bytes"] == 1000


# A trainer killed with SIGKILL after step 5 (checkpoint at 3): metrics.jsonl has kept steps 1-4,
# W&B whatever its writer had flushed (it buffers its log: often nothing of this segment).
KILLED_RUN = """
import os, signal, sys
import torch
from fakes import make_spec
from harness.store import RunDir
from harness.telemetry import Telemetry

spec = make_spec(loggers=("wandb",))
tel = Telemetry(RunDir(sys.argv[1]), spec, device=torch.device("cpu"), flops_per_token=1e6, total_steps=6, quiet=True)
tel.start()
for step in range(1, 6):
    with tel.step(step) as rec:
        rec.update(loss=4.0 / step, lr=1e-3, grad_norm=0.5, tokens=64)
    if step == 3:
        tel.mark_checkpoint(3)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_resume_after_kill_9_logs_every_step_once_as_metrics_jsonl_has_it(tmp_path):
    spec = make_spec(loggers=("wandb",))
    run = RunDir(tmp_path / spec.run_id)
    # Its own wandb service, as a separate `harness train` has: this process's (WANDB_SERVICE, inherited)
    # would go on holding the killed run as "in use".
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    env["PYTHONPATH"] = str(ROOT / "tests" / "telemetry")
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, str(run.path)], cwd=ROOT, env=env)
    assert killed.returncode == -9
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3, 4]
    first_id = read_state(run)["id"]

    resumed = _telemetry(run, spec)
    resumed.start(start_step=3)  # from the step-3 checkpoint: 4 and 5 are redone, with other losses
    _train(resumed, range(4, 7), loss=lambda step: 10.0 + step)
    resumed.finish("completed")

    wb = read_wandb_run(run.path)
    assert wb.run_id == first_id  # the same W&B run continues
    assert len(wb.folders) == 1  # the killed segment's folder was replaced, not left to sync twice
    records = run.read_metrics()
    assert wb.steps() == [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert _history(run, "train/loss") == {r["step"]: r["loss"] for r in records}
    assert _history(run, "train/loss")[4] == 14.0
    assert _history(run, "train/time_s") == {r["step"]: r["time_s"] for r in records}


def test_a_fresh_start_is_a_new_wandb_run_and_drops_the_old_attempt(tmp_path, spec):
    spec = make_spec(loggers=("wandb",))
    run = RunDir(tmp_path / spec.run_id)
    ids = []
    for _ in range(2):
        tel = _telemetry(run, spec)
        tel.start()
        _train(tel, [1, 2])
        tel.finish("completed")
        ids.append(read_state(run)["id"])
    assert ids[0] != ids[1]
    assert [p.name.rsplit("-", 1)[-1] for p in (run.path / "wandb").glob("offline-run-*")] == [ids[1]]
    assert read_wandb_run(run.path).steps() == [1, 2]


def test_only_rank_0_logs_to_wandb(tmp_path):
    spec = make_spec(loggers=("wandb",))
    run = RunDir(tmp_path / spec.run_id)
    tel = _telemetry(run, spec, world_size=2, rank=1)
    tel.start()
    _train(tel, [1, 2])
    tel.finish("completed")
    assert not (run.path / "wandb").exists()


def test_wandb_is_offline_unless_the_suite_or_the_user_opts_in():
    assert wandb_mode(TelemetryConfig(), environ={}) == "offline"
    assert wandb_mode(TelemetryConfig(wandb_mode="online"), environ={}) == "online"
    assert wandb_mode(TelemetryConfig(), environ={"WANDB_MODE": "online"}) == "online"
    assert wandb_mode(TelemetryConfig(wandb_mode="online"), environ={"WANDB_MODE": "offline"}) == "offline"


def test_a_missing_wandb_stops_the_run_before_training_naming_the_install_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    runs = tmp_path / "runs"
    code = main(["run", str(ROOT / "suites" / "smoke.toml"), "--set", "telemetry.loggers=wandb",
                 "--runs-dir", str(runs), "--skip-eval", "--quiet"])  # fmt: skip
    assert code == 2
    assert INSTALL in capsys.readouterr().err
    assert not list(runs.glob("**/metrics.jsonl"))
    with pytest.raises(InvalidInput, match=INSTALL.replace("[", r"\[").replace("]", r"\]")):
        _telemetry(RunDir(tmp_path / "r"), make_spec(loggers=("wandb",)))  # `harness train` on its own


def test_state_file_names_the_segment_folder(tmp_path):
    spec = make_spec(loggers=("wandb",))
    run = RunDir(tmp_path / spec.run_id)
    tel = _telemetry(run, spec)
    tel.start()
    tel.finish("completed")
    state = json.loads((run.path / "wandb" / "harness.json").read_text())
    assert state["mode"] == "offline" and (run.path / "wandb" / state["train"]).is_dir()


class _ResumedOnlineRun:
    """What wandb.init returns online for a run whose server already holds steps 1-5."""

    resumed, step, dir = True, 6, None

    def __init__(self):
        self.logged, self.summary = [], {}

    def log(self, scalars, step):
        self.logged.append(step)

    def finish(self, exit_code=0):
        pass


def test_online_a_resumed_run_is_sent_only_the_steps_its_server_lacks(tmp_path, monkeypatch):
    from harness.telemetry import wandb_logger

    spec = make_spec(loggers=("wandb",))
    run = RunDir(tmp_path / spec.run_id)
    first = _telemetry(run, spec)
    first.start()
    _train(first, range(1, 6), checkpoint_at={4})
    first.finish("interrupted", reason="killed")
    online = _ResumedOnlineRun()
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setattr(wandb_logger, "open_run", lambda *args: online)
    second = _telemetry(run, spec)
    second.start(start_step=4)  # replays 1-4, redoes 5: the server has them all already
    _train(second, [5, 6])
    second.finish("completed")
    assert online.logged == [6]
    assert read_state(run)["mode"] == "online"
