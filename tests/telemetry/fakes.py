"""A stand-in for pynvml (the nvidia-ml-py module) and for torch.cuda, so GPU paths run on a CPU."""

from __future__ import annotations

import torch

from harness.suite import Suite, plan

# summary.json keys documented in docs/ARCHITECTURE.md (the contract analysis reads).
SUMMARY_KEYS = {
    "run_id",
    "stage",
    "arm",
    "recipe",
    "emulated",
    "status",
    "reason",
    "steps",
    "steady_steps",
    "tokens_total",
    "final_loss",
    "device",
    "world_size",
    "step_time_s",
    "tokens_per_s",
    "mfu",
    "peak_alloc_bytes",
    "peak_reserved_bytes",
    "nvml_peak_memory_bytes",
    "energy_j",
    "energy_per_token_j",
}


class FakeNvml:
    """Two GPUs; every energy read advances the counter by 1000 mJ; memory grows by 1 MiB a read."""

    NVML_CLOCK_SM = 1
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, *, energy_counter: bool = True, power_mw: int = 200_000):
        self.energy_counter = energy_counter
        self.power_mw = power_mw
        self.energy_mj = {0: 5_000_000, 1: 9_000_000}  # since driver load: must be taken relative
        self.memory = {0: 1 << 30, 1: 2 << 30}
        self.initialised = 0

    def nvmlInit(self):
        self.initialised += 1

    def nvmlShutdown(self):
        self.initialised -= 1

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return 0

    def nvmlDeviceGetIndex(self, handle):
        return handle

    def nvmlDeviceGetMemoryInfo(self, handle):
        self.memory[handle] += 1 << 20
        return type("Mem", (), {"used": self.memory[handle]})()

    def nvmlDeviceGetUtilizationRates(self, handle):
        return type("Util", (), {"gpu": 97})()

    def nvmlDeviceGetPowerUsage(self, handle):
        return self.power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.energy_counter:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        self.energy_mj[handle] += 1000
        return self.energy_mj[handle]

    def nvmlDeviceGetClockInfo(self, handle, kind):
        return 1980

    def nvmlDeviceGetTemperature(self, handle, kind):
        return 61

    def nvmlSystemGetDriverVersion(self):
        return "570.00"


def fake_cuda(monkeypatch, name: str = "NVIDIA H100 80GB HBM3", alloc: int = 1000, reserved: int = 2000) -> None:
    """Make torch.cuda look present to the telemetry code (no kernels run: steps do CPU work)."""
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    props = type("Props", (), {"uuid": "GPU-fake-0", "name": name})()
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: props)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: alloc)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: reserved)


def make_spec(*, warmup_steps: int = 2, tensorboard: bool = False, recipe: str = "bf16", loggers: tuple = ()):
    suite = Suite.model_validate(
        {
            "name": "tel",
            "model": {"preset": "tiny"},
            "arms": {"a": recipe},
            "topology": {"device": "cpu"},
            "stages": {
                "cpt": {
                    "kind": "cpt",
                    "data": {"path": "builtin:stdlib"},
                    "seq_len": 16,
                    "global_batch_size": 2,
                    "micro_batch_size": 2,
                    "steps": 6,
                    "optim": {"lr": 1e-3},
                }
            },
            "telemetry": {
                "warmup_steps": warmup_steps,
                "nvml_interval_s": 0.05,
                "tensorboard": tensorboard,  # the older spelling of loggers = ["tensorboard"]
                "loggers": list(loggers),
            },
        }
    )
    return plan(suite)[0]
