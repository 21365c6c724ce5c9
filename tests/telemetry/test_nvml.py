"""The NVML sampler: rows and energy from a fake pynvml, and a run that goes on without NVML."""

from __future__ import annotations

import csv
import sys
import time

import pytest
import torch
from fakes import FakeNvml, fake_cuda

from harness.store import RunDir
from harness.telemetry import Telemetry
from harness.telemetry import nvml as nvml_mod

CUDA0 = torch.device("cuda", 0)


def _rows(path):
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _sampler(tmp_path, fake, **kwargs):
    # a one-hour interval: the thread only waits, so every sample is one we take explicitly
    return nvml_mod.NvmlSampler(fake, [0, 1], tmp_path / "nvml.csv", 3600.0, clock_origin=time.perf_counter(), **kwargs)


def test_sampler_writes_documented_columns_and_energy_relative_to_start(tmp_path):
    fake = FakeNvml()
    sampler = _sampler(tmp_path, fake)
    sampler.start()
    sampler.sample()
    sampler.stop()
    rows = _rows(tmp_path / "nvml.csv")
    assert tuple(rows[0]) == nvml_mod.COLUMNS
    assert len(rows) == 6  # start, one explicit, stop; two GPUs each
    gpu1 = [r for r in rows if r["gpu"] == "1"]
    assert [float(r["energy_j"]) for r in gpu1] == [0.0, 1.0, 2.0]  # 1000 mJ per read, origin subtracted
    assert gpu1[0]["power_w"] == "200.0" and gpu1[0]["sm_clock_mhz"] == "1980"
    totals = sampler.totals()
    assert totals["energy_j"] == pytest.approx(4.0)  # 2 J on each GPU
    assert totals["nvml_peak_memory_bytes"] == (2 << 30) + 3 * (1 << 20)
    assert sampler.energy_method == "counter"
    assert fake.initialised == -1  # stop() shut NVML down (the fake was never initialised here)


def test_sampler_integrates_power_when_the_energy_counter_is_unsupported(tmp_path):
    sampler = _sampler(tmp_path, FakeNvml(energy_counter=False, power_mw=100_000))
    sampler.start()
    sampler.sample()
    sampler.stop()
    rows = [r for r in _rows(tmp_path / "nvml.csv") if r["gpu"] == "0"]
    elapsed = float(rows[-1]["time_s"]) - float(rows[0]["time_s"])
    assert sampler.energy_method == "integrated_power"
    assert float(rows[-1]["energy_j"]) == pytest.approx(100.0 * elapsed, abs=0.01)


def test_sampler_on_resume_continues_energy_and_keeps_earlier_rows(tmp_path):
    first = _sampler(tmp_path, FakeNvml())
    first.start()
    first.stop()
    path = tmp_path / "nvml.csv"
    last, rows = nvml_mod.read_previous_energy(path, max_time_s=1e9)
    second = _sampler(tmp_path, FakeNvml(), time_offset_s=100.0, energy_offset_j=last, keep_rows=rows)
    second.start()
    second.stop()
    gpu0 = [r for r in _rows(path) if r["gpu"] == "0"]
    assert len(gpu0) == 4
    assert [float(r["energy_j"]) for r in gpu0] == [0.0, 1.0, 1.0, 2.0]
    assert float(gpu0[2]["time_s"]) >= 100.0


def test_probe_reports_missing_pynvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml now raises ImportError
    module, handles, reason = nvml_mod.probe(CUDA0)
    assert module is None and handles == []
    assert "pynvml not installed" in reason


def test_probe_reports_nvml_init_failure(monkeypatch):
    fake = FakeNvml()

    def broken():
        raise RuntimeError("Driver Not Loaded")

    fake.nvmlInit = broken
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert nvml_mod.probe(CUDA0)[2] == "nvmlInit failed: Driver Not Loaded"


def test_probe_on_cpu_says_there_is_no_gpu():
    assert nvml_mod.probe(torch.device("cpu"))[2] == "no GPU: device is cpu"


def test_gpu_run_without_pynvml_still_works_and_the_manifest_says_why(tmp_path, monkeypatch, spec):
    fake_cuda(monkeypatch)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    run = RunDir(tmp_path / spec.run_id)
    tel = Telemetry(run, spec, device=CUDA0, flops_per_token=1e9, total_steps=3, quiet=True)
    tel.start()
    for step in (1, 2, 3):
        with tel.step(step) as rec:
            rec.update(loss=1.0, lr=1e-3, grad_norm=1.0, tokens=1000)
    summary = tel.finish("completed")
    assert run.read_manifest()["nvml"] == {
        "sampled": False,
        "reason": "pynvml not installed (pip install nvidia-ml-py)",
    }
    assert not run.nvml.exists()
    assert summary["energy_j"] is None and summary["nvml_peak_memory_bytes"] is None
    record = run.read_metrics()[-1]
    assert record["peak_alloc_bytes"] == 1000 and record["peak_reserved_bytes"] == 2000
    assert record["mfu"] == pytest.approx(1e9 * record["tokens_per_s"] / 989.4e12)


def test_gpu_run_with_nvml_reports_energy_per_token(tmp_path, monkeypatch, spec):
    fake_cuda(monkeypatch)
    fake = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    run = RunDir(tmp_path / spec.run_id)
    tel = Telemetry(run, spec, device=CUDA0, flops_per_token=1e9, total_steps=4, quiet=True)
    tel.start()
    for step in (1, 2, 3, 4):
        with tel.step(step) as rec:
            rec.update(loss=1.0, tokens=1000)
        tel._sampler.sample()  # one explicit sample between steps, instead of waiting for the thread
    summary = tel.finish("completed")
    manifest = run.read_manifest()
    assert manifest["nvml"]["sampled"] is True and manifest["nvml"]["energy_method"] == "counter"
    assert summary["energy_j"] > 0
    assert summary["energy_per_token_j"] is not None and summary["energy_per_token_j"] > 0
    assert summary["nvml_peak_memory_bytes"] >= 1 << 30
    assert fake.initialised == 0  # every nvmlInit matched by a shutdown


def test_gpu_is_found_through_cuda_visible_devices_when_uuid_lookup_fails(monkeypatch):
    fake_cuda(monkeypatch)
    fake = FakeNvml()

    def no_uuid(uuid):
        raise RuntimeError("NVML_ERROR_NOT_FOUND")

    fake.nvmlDeviceGetHandleByUUID = no_uuid
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    module, handles, reason = nvml_mod.probe(CUDA0)
    assert reason is None and handles == [1]  # torch's cuda:0 is physical GPU 1
