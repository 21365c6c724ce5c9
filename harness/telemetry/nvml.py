"""Background NVML sampler: device memory, utilisation, power, energy, SM clock, temperature.

One sampler thread per process, over the GPUs that process uses, every `interval_s`. Rows go
to nvml.csv (rank 0) or nvml.rank<R>.csv (other ranks), flushed per sample so a killed run keeps
them. energy_j is cumulative since the sampler started (plus the previous segment's total when a
run resumes): from nvmlDeviceGetTotalEnergyConsumption (mJ since driver load, taken relative to
the first sample) where the GPU supports it (Volta and later), otherwise power integrated with
the trapezoid rule between samples. When pynvml is missing, nvmlInit fails or there is no GPU,
`probe` says why and no sampler runs: training goes on without it.
"""

from __future__ import annotations

import csv
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.telemetry.stats import energy_in_windows

COLUMNS = (
    "time_s",
    "gpu",
    "memory_used_bytes",
    "utilization_pct",
    "power_w",
    "energy_j",
    "sm_clock_mhz",
    "temperature_c",
)


def csv_path(run_path: Path, rank: int) -> Path:
    return run_path / ("nvml.csv" if rank == 0 else f"nvml.rank{rank}.csv")


def probe(device) -> tuple[object | None, list[object], str | None]:
    """(pynvml module, NVML handles of the GPUs `device` uses, reason when sampling is off)."""
    if getattr(device, "type", str(device)) != "cuda":
        return None, [], f"no GPU: device is {device}"
    try:
        import pynvml
    except ImportError:
        return None, [], "pynvml not installed (pip install nvidia-ml-py)"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError subclasses, or a library that cannot load
        return None, [], f"nvmlInit failed: {exc}"
    try:
        return pynvml, [_handle_for(pynvml, device)], None
    except Exception as exc:
        pynvml.nvmlShutdown()
        return None, [], f"cannot map {device} to an NVML device: {exc}"


def _handle_for(pynvml, device):
    """NVML handle of a torch CUDA device: by UUID (CUDA_VISIBLE_DEVICES renumbers devices), else by
    the physical index CUDA_VISIBLE_DEVICES names, else by the torch index."""
    import torch

    index = device.index if device.index is not None else torch.cuda.current_device()
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    if uuid is not None:
        text = str(uuid)
        try:
            return pynvml.nvmlDeviceGetHandleByUUID(text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}")
        except Exception:
            pass  # e.g. a MIG slice: fall back to the index
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if index < len(visible) and visible[index].isdigit():
        index = int(visible[index])
    return pynvml.nvmlDeviceGetHandleByIndex(index)


def read_previous_energy(path: Path, max_time_s: float) -> tuple[dict[int, float], list[dict]]:
    """On resume: keep rows up to max_time_s; return each GPU's last energy_j and the kept rows."""
    if not path.is_file():
        return {}, []
    with path.open() as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("time_s") and float(r["time_s"]) <= max_time_s]
    last = {int(r["gpu"]): float(r["energy_j"]) for r in rows if r.get("energy_j")}
    return last, rows


@dataclass
class _Series:
    times_s: list[float] = field(default_factory=list)
    energy_j: list[float] = field(default_factory=list)
    peak_memory_bytes: int | None = None
    counter_origin_mj: int | None = None
    last_power: tuple[float, float] | None = None  # (time_s, watts) for the trapezoid fallback


class NvmlSampler:
    """Samples `handles` on a daemon thread from start() to stop(); times on the caller's clock."""

    def __init__(
        self,
        pynvml,
        handles: list,
        path: Path,
        interval_s: float,
        *,
        clock_origin: float,
        time_offset_s: float = 0.0,
        energy_offset_j: dict[int, float] | None = None,
        keep_rows: list[dict] | None = None,
    ):
        self._nvml = pynvml
        self._handles = [(pynvml.nvmlDeviceGetIndex(h), h) for h in handles]
        self.path = path
        self.interval_s = interval_s
        self._origin = clock_origin
        self._offset = time_offset_s
        self._energy_offset = energy_offset_j or {}
        self._keep_rows = keep_rows or []
        self.series: dict[int, _Series] = {gpu: _Series() for gpu, _ in self._handles}
        for row in self._keep_rows:  # a resumed run's peak and energy windows cover earlier segments too
            series = self.series.get(int(row["gpu"]))
            if series is None:
                continue
            if row.get("memory_used_bytes"):
                series.peak_memory_bytes = max(series.peak_memory_bytes or 0, int(float(row["memory_used_bytes"])))
            if row.get("energy_j"):
                series.times_s.append(float(row["time_s"]))
                series.energy_j.append(float(row["energy_j"]))
        self.energy_method: str | None = None
        self._recent: deque[dict] = deque(maxlen=64)  # the first GPU's latest rows, for recent_rows()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the thread and stop() both sample
        self._thread: threading.Thread | None = None
        self._fh = None
        self._writer = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("w", newline="")  # rewritten: rows kept from before a resume come first
        self._writer = csv.DictWriter(self._fh, fieldnames=COLUMNS)
        self._writer.writeheader()
        for row in self._keep_rows:
            self._writer.writerow({k: row.get(k, "") for k in COLUMNS})
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="nvml-sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def stop(self) -> None:
        """Stop the thread, take a last sample (so energy covers the whole run), close, shut NVML down."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self.sample()
        self._fh.close()
        self._nvml.nvmlShutdown()

    def sample(self) -> None:
        with self._lock:
            now = time.perf_counter() - self._origin + self._offset
            for gpu, handle in self._handles:
                row = self._read(gpu, handle, now)
                self._writer.writerow({k: "" if row[k] is None else row[k] for k in COLUMNS})
                if gpu == self._handles[0][0]:
                    self._recent.append(row)
            self._fh.flush()

    def _read(self, gpu: int, handle, now: float) -> dict:
        nv, series = self._nvml, self.series[gpu]
        memory = _try(lambda: nv.nvmlDeviceGetMemoryInfo(handle).used)
        util = _try(lambda: nv.nvmlDeviceGetUtilizationRates(handle).gpu)
        power_mw = _try(lambda: nv.nvmlDeviceGetPowerUsage(handle))
        power = power_mw / 1000 if power_mw is not None else None
        energy = self._energy(gpu, handle, now, power)
        if memory is not None:
            series.peak_memory_bytes = max(series.peak_memory_bytes or 0, int(memory))
        if energy is not None:
            series.times_s.append(now)
            series.energy_j.append(energy)
        return {
            "time_s": round(now, 4),
            "gpu": gpu,
            "memory_used_bytes": memory,
            "utilization_pct": util,
            "power_w": power,
            "energy_j": None if energy is None else round(energy, 4),
            "sm_clock_mhz": _try(lambda: nv.nvmlDeviceGetClockInfo(handle, nv.NVML_CLOCK_SM)),
            "temperature_c": _try(lambda: nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU)),
        }

    def _energy(self, gpu: int, handle, now: float, power: float | None) -> float | None:
        series, offset = self.series[gpu], self._energy_offset.get(gpu, 0.0)
        if self.energy_method in (None, "counter"):
            total_mj = _try(lambda: self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
            if total_mj is not None:
                self.energy_method = "counter"
                if series.counter_origin_mj is None:
                    series.counter_origin_mj = total_mj
                return offset + (total_mj - series.counter_origin_mj) / 1000
        if power is None:
            return None
        self.energy_method = "integrated_power"
        previous = series.energy_j[-1] if series.energy_j else offset
        if series.last_power is not None:
            t0, p0 = series.last_power
            previous += (now - t0) * (p0 + power) / 2
        series.last_power = (now, power)
        return previous

    def recent_rows(self) -> list[dict]:
        """The first GPU's latest samples, oldest first (step loggers' nvml/* at each step's end)."""
        with self._lock:  # the thread appends while the loop reads
            return list(self._recent)

    def totals(self, windows: Sequence[tuple[float, float]] = ()) -> dict:
        """Peak device memory over this process's GPUs, their energy since the sampler started, and
        their energy inside `windows` (the steady steps' (begin, end) times; None without two samples)."""
        series = list(self.series.values())
        peaks = [s.peak_memory_bytes for s in series if s.peak_memory_bytes is not None]
        energies = [s.energy_j[-1] for s in series if s.energy_j]
        steady = None
        if windows and series and all(len(s.times_s) >= 2 for s in series):
            steady = sum(energy_in_windows(s.times_s, s.energy_j, windows) for s in series)
        return {
            "nvml_peak_memory_bytes": max(peaks) if peaks else None,
            "energy_j": sum(energies) if len(energies) == len(series) else None,
            "steady_energy_j": steady,
        }


def _try(read):
    """One NVML field; None when this GPU or driver does not support it."""
    try:
        return read()
    except Exception:
        return None
