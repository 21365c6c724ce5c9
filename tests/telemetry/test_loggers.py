"""Step loggers: the suite's telemetry.loggers, the numbers each logger receives, TensorBoard behind the registry."""

from __future__ import annotations

import sys

import pytest
import torch
from fakes import FakeNvml, fake_cuda, make_spec

from harness.errors import InvalidInput
from harness.store import RunDir
from harness.suite import LOGGER_NAMES, TelemetryConfig, fingerprint
from harness.telemetry import Telemetry
from harness.telemetry.loggers import LOGGERS, check_loggers, logger_class, nvml_at, step_scalars


def _telemetry(run, spec, device="cpu", total=6):
    return Telemetry(run, spec, device=device, flops_per_token=1e6, total_steps=total, quiet=True)


def _train(tel, steps, loss=lambda step: 4.0 / step, checkpoint_at=()):
    for step in steps:
        with tel.step(step) as rec:
            rec.update(loss=loss(step), lr=1e-3, grad_norm=0.5, tokens=64)
        if step in checkpoint_at:
            tel.mark_checkpoint(step)


def test_every_logger_a_suite_may_name_is_registered():
    assert set(LOGGERS) == set(LOGGER_NAMES)
    for name in LOGGERS:
        cls = logger_class(name)
        assert all(callable(getattr(cls, m)) for m in ("check_available", "log", "finish"))


def test_tensorboard_true_still_means_the_tensorboard_logger():
    assert TelemetryConfig(tensorboard=True).loggers == ["tensorboard"]
    assert TelemetryConfig(tensorboard=False).loggers == []
    assert TelemetryConfig(loggers=["wandb"], tensorboard=True).loggers == ["wandb", "tensorboard"]
    assert TelemetryConfig(loggers="wandb, tensorboard").loggers == ["wandb", "tensorboard"]  # --set a,b


def test_an_unknown_logger_is_refused_naming_the_valid_ones():
    with pytest.raises(ValueError, match="'tensorboard' or 'wandb'"):
        TelemetryConfig(loggers=["mlflow"])


def test_loggers_do_not_change_the_fingerprint():
    # Where a run is logged does not change what it computes: a logged arm still matches an unlogged one.
    plain = make_spec()
    logged = make_spec(loggers=("wandb", "tensorboard"))
    logged.telemetry.wandb_mode = "online"
    assert fingerprint(plain) == fingerprint(logged)


def test_step_scalars_are_the_numbers_of_the_metrics_line_and_the_nvml_row():
    record = {"step": 4, "loss": 2.5, "lr": 1e-4, "grad_norm": None, "tokens": 4096, "processed_tokens": 5000,
              "step_time_s": 0.5,
              "tokens_per_s": 8192.0, "mfu": None, "peak_alloc_bytes": 7, "peak_reserved_bytes": 9,
              "checkpoint": True, "time_s": 12.0}  # fmt: skip
    row = {"time_s": "11.9", "gpu": "0", "memory_used_bytes": "1073741824", "utilization_pct": "97",
           "power_w": "412.5", "energy_j": "", "sm_clock_mhz": "1980", "temperature_c": "61"}  # fmt: skip
    scalars = step_scalars(record, row)
    assert scalars == {
        "train/loss": 2.5, "train/lr": 1e-4, "train/tokens": 4096, "train/processed_tokens": 5000,
        "train/step_time_s": 0.5,
        "train/tokens_per_s": 8192.0, "train/peak_alloc_bytes": 7, "train/peak_reserved_bytes": 9,
        "train/time_s": 12.0, "nvml/memory_used_bytes": 1073741824, "nvml/utilization_pct": 97,
        "nvml/power_w": 412.5, "nvml/sm_clock_mhz": 1980, "nvml/temperature_c": 61,
    }  # fmt: skip
    assert step_scalars({"step": 1, "loss": float("nan")}, None) == {}  # metrics.jsonl stores NaN as null


def test_nvml_row_of_a_step_is_the_latest_taken_by_its_end():
    rows = [{"time_s": 1.0, "power_w": 100}, {"time_s": 2.0, "power_w": 200}, {"time_s": 3.0, "power_w": 300}]
    assert nvml_at(rows, 2.5)["power_w"] == 200
    assert nvml_at(rows, 2.0)["power_w"] == 200
    assert nvml_at(rows, 0.5) is None


def test_a_missing_tensorboard_is_named_with_its_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(InvalidInput, match=r"pip install 'fp8-parity-harness\[tensorboard\]'"):
        check_loggers(["tensorboard"])


def _tb_scalars(run: RunDir, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run.tensorboard))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def test_tensorboard_gets_nvml_series_with_the_step_scalars(tmp_path, monkeypatch):
    fake_cuda(monkeypatch)
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml())
    spec = make_spec(loggers=("tensorboard",))
    run = RunDir(tmp_path / spec.run_id)
    tel = _telemetry(run, spec, device=torch.device("cuda", 0), total=3)
    tel.start()
    for step in (1, 2, 3):
        with tel.step(step) as rec:
            rec.update(loss=1.0 / step, tokens=1000)
        tel._sampler.sample()  # a sample between steps, instead of waiting for the thread
    tel.finish("completed")
    assert [s for s, _ in _tb_scalars(run, "train/loss")] == [1, 2, 3]
    memory = [v for _, v in _tb_scalars(run, "nvml/memory_used_bytes")]
    assert len(memory) == 3 and memory == sorted(memory) and memory[0] >= 1 << 30  # the fake's memory grows


def test_tensorboard_after_a_resume_shows_each_step_once_with_the_redone_values(tmp_path):
    spec = make_spec(loggers=("tensorboard",))
    run = RunDir(tmp_path / spec.run_id)
    first = _telemetry(run, spec)
    first.start()
    _train(first, range(1, 6), checkpoint_at={3})
    first.finish("interrupted", reason="killed")
    second = _telemetry(run, spec)
    second.start(start_step=3)  # steps 4 and 5 are redone, with other losses this time
    _train(second, range(4, 7), loss=lambda step: 10.0 + step)
    second.finish("completed")
    assert _tb_scalars(run, "train/loss") == [(1, 4.0), (2, 2.0), (3, pytest.approx(4 / 3)), (4, 14.0), (5, 15.0),
                                              (6, 16.0)]  # fmt: skip
    assert [r["loss"] for r in run.read_metrics()][3:] == [14.0, 15.0, 16.0]
