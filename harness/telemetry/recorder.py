"""Telemetry of one training run: the object the trainer loop talks to.

    tel = Telemetry(run_dir, spec, device=device, flops_per_token=fpt, total_steps=n)
    tel.start(start_step)
    with tel.step(step) as rec:
        ...; rec.update(loss=..., lr=..., grad_norm=..., tokens=...)
    tel.mark_checkpoint(step)
    summary = tel.finish("completed")

Each step is timed with time.perf_counter between two device synchronisations; allocator peaks
are reset before and read after it. Per-step numbers are combined over ranks (ranks.py) and rank
0 writes metrics.jsonl, manifest.json and summary.json, and feeds the suite's step loggers
(loggers.py: TensorBoard, W&B) each metrics.jsonl record as it is written. A step record is
written when the next step begins (or at mark_checkpoint / finish), so a checkpoint written after
the step's block can still flag it; a kill therefore loses at most the last two steps' lines.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from harness.recipes import is_emulated
from harness.store import STATUSES, MetricsWriter, RunDir, atomic_write_json, read_metrics, truncate_metrics
from harness.telemetry import nvml as nvml_mod
from harness.telemetry.flops import peak_flops
from harness.telemetry.loggers import StepLoggers, check_loggers, nvml_at
from harness.telemetry.manifest import build_manifest, utc_now
from harness.telemetry.progress import ProgressDisplay
from harness.telemetry.ranks import FINISH_OPS, STEP_OPS, broadcast_from_rank0, distributed_world, gather_reduce
from harness.telemetry.stats import build_summary, steady_records, step_windows


class StepRecord:
    """What the loop reports for one step; tensors are read after the timed region ends."""

    def __init__(self, step: int):
        self.step = step
        self.fields: dict[str, Any] = {}

    def update(self, **fields: Any) -> None:
        """loss, lr, grad_norm (numbers or 0-d tensors), tokens (real non-pad tokens on this rank),
        processed_tokens (tokens its forwards ran on, padding included)."""
        self.fields.update(fields)


def _scalar(value: Any) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        value = value.detach().float().item()
    return value


def _count(value: Any) -> int | None:
    value = _scalar(value)
    return None if value is None else int(round(value))


def rss_peak_bytes() -> int:
    """This process's resident-set high-water mark (Linux reports KiB, macOS bytes). Not allocator memory."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class Telemetry:
    """Step timing, memory, tokens/s, MFU, NVML sampling, manifest and summary of one run."""

    def __init__(
        self,
        run_dir: RunDir,
        spec,
        *,
        device: torch.device,
        flops_per_token: float | None,
        total_steps: int,
        quiet: bool = False,
        world_size: int = 1,
        rank: int = 0,
    ):
        self.run_dir = run_dir
        self.spec = spec
        self.device = torch.device(device)
        self.flops_per_token = flops_per_token
        self.total_steps = total_steps
        self.quiet = quiet
        world = distributed_world()
        self.rank, self.world_size = world if world else (rank, world_size)
        self.writer = self.rank == 0
        self.cuda = self.device.type == "cuda"
        self.device_name = torch.cuda.get_device_name(self.device) if self.cuda else str(self.device)
        self.peak_flops = peak_flops(self.device_name) if self.cuda else None
        self.emulated = is_emulated(spec.recipe)
        self._started = False
        self._summary: dict | None = None
        self._pending: dict | None = None
        self._checkpoints: set[int] = set()
        self._segment_starts: list[int] = [0]
        self._offset_s = 0.0
        self._t0 = time.perf_counter()
        self._metrics: MetricsWriter | None = None
        self._loggers: StepLoggers | None = None
        self._progress: ProgressDisplay | None = None
        self._sampler: nvml_mod.NvmlSampler | None = None
        self._nvml_status: dict = {"sampled": False, "reason": "not started"}
        if self.writer:
            check_loggers(spec.telemetry.loggers)  # a missing package stops the run here, before any step

    # ------------------------------------------------------------ lifecycle

    def start(self, start_step: int = 0) -> None:
        """Write the manifest (status running), start the NVML sampler and the progress display.

        start_step > 0 resumes: metrics after that step are dropped, the clock continues from the
        last kept record, and the next warmup_steps steps are excluded from statistics again.
        """
        previous: dict = {}  # the manifest of the segment we resume, if any
        if self.writer:
            truncate_metrics(self.run_dir.metrics, start_step)
            kept = read_metrics(self.run_dir.metrics) if start_step and self.run_dir.metrics.is_file() else []
            self._offset_s = float(kept[-1]["time_s"]) if kept else 0.0
            if start_step and self.run_dir.manifest.is_file():
                previous = self.run_dir.read_manifest()
        self._offset_s, previous = broadcast_from_rank0((self._offset_s, previous))
        self._segment_starts = sorted(set(previous.get("segment_starts", [0])) | {start_step})
        if self.writer and self.spec.telemetry.loggers:  # first: one that cannot open leaves nothing started
            self._loggers = StepLoggers(self.spec.telemetry.loggers, self.run_dir, self.spec, start_step)
        self._t0 = time.perf_counter()
        self._start_sampler(start_step)
        if self.writer:
            self._write_manifest(previous, resumed=bool(start_step))
            self._metrics = MetricsWriter(self.run_dir.metrics)
            self._progress = ProgressDisplay(self.total_steps, start_step, quiet=self.quiet, label=self.spec.run_id)
        self._started = True

    def _write_manifest(self, previous: dict, resumed: bool = False) -> None:
        manifest = build_manifest(
            self.spec, device=self.device, world_size=self.world_size, emulated=self.emulated, nvml=self._nvml_status
        )
        if previous.get("started_at"):
            manifest["started_at"] = previous["started_at"]  # the run began in its first segment
        resumed_at = previous.get("resumed_at", [])
        manifest.update(
            segment_starts=self._segment_starts, resumed_at=[*resumed_at, utc_now()] if resumed else resumed_at
        )
        atomic_write_json(self.run_dir.manifest, manifest)

    def _start_sampler(self, start_step: int) -> None:
        pynvml, handles, reason = nvml_mod.probe(self.device)
        interval = self.spec.telemetry.nvml_interval_s
        if pynvml is None:
            self._nvml_status = {"sampled": False, "reason": reason}
            return
        path = nvml_mod.csv_path(self.run_dir.path, self.rank)
        last, rows = nvml_mod.read_previous_energy(path, self._offset_s) if start_step else ({}, [])
        self._sampler = nvml_mod.NvmlSampler(
            pynvml,
            handles,
            path,
            interval,
            clock_origin=self._t0,
            time_offset_s=self._offset_s,
            energy_offset_j=last,
            keep_rows=rows,
        )
        self._sampler.start()
        self._nvml_status = {"sampled": True, "reason": None, "interval_s": interval}

    @contextmanager
    def step(self, step: int) -> Iterator[StepRecord]:
        """Time one optimiser step (1-based) and record it when the block ends without an error."""
        self._write_pending()
        record = StepRecord(step)
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        begin = time.perf_counter()
        yield record
        if self.cuda:
            torch.cuda.synchronize(self.device)
        end = time.perf_counter()
        self._record(record, end - begin, end)

    def _record(self, rec: StepRecord, step_time_s: float, end: float) -> None:
        local = {
            "tokens": _count(rec.fields.get("tokens")),
            "processed_tokens": _count(rec.fields.get("processed_tokens")),
            "step_time_s": step_time_s,
            "peak_alloc_bytes": torch.cuda.max_memory_allocated(self.device) if self.cuda else None,
            "peak_reserved_bytes": torch.cuda.max_memory_reserved(self.device) if self.cuda else None,
        }
        reduced = gather_reduce(local, STEP_OPS)
        tokens, seconds = reduced["tokens"], reduced["step_time_s"]
        tokens_per_s = tokens / seconds if tokens is not None and seconds > 0 else None
        mfu = None
        if tokens_per_s is not None and self.flops_per_token and self.peak_flops:
            mfu = self.flops_per_token * tokens_per_s / (self.peak_flops * self.world_size)
        record = {
            "step": rec.step,
            "loss": _scalar(rec.fields.get("loss")),
            "lr": _scalar(rec.fields.get("lr")),
            "grad_norm": _scalar(rec.fields.get("grad_norm")),
            "tokens": tokens,
            # tokens the forwards ran on, padding included (1 - tokens / processed_tokens: the padding fraction)
            "processed_tokens": reduced["processed_tokens"],
            "step_time_s": seconds,
            "tokens_per_s": tokens_per_s,
            "mfu": mfu,
            "peak_alloc_bytes": reduced["peak_alloc_bytes"],
            "peak_reserved_bytes": reduced["peak_reserved_bytes"],
            "checkpoint": rec.step in self._checkpoints,
            "time_s": self._offset_s + end - self._t0,
        }
        self._pending = record
        if self._progress is not None:
            self._progress.update(rec.step, record["loss"], tokens_per_s)

    def mark_checkpoint(self, step: int) -> None:
        """Step `step` wrote a checkpoint: flag its record, excluded from statistics."""
        self._checkpoints.add(step)
        if self._pending is not None and self._pending["step"] == step:
            self._write_pending()

    def _write_pending(self) -> None:
        if self._pending is None:
            return
        record, self._pending = self._pending, None
        record["checkpoint"] = record["step"] in self._checkpoints
        if self._metrics is not None:
            self._metrics.write(record)
        if self._loggers is not None:
            recent = self._sampler.recent_rows() if self._sampler is not None else []
            self._loggers.log(record, nvml_at(recent, record["time_s"]))

    def finish(self, status: str, reason: str | None = None) -> dict:
        """Stop sampling, write summary.json and the manifest's status / ended_at; returns the summary.

        status is one of harness.store.STATUSES. With several ranks, end-of-run numbers are gathered
        only for status "completed": after a failure another rank may never reach the collective,
        so NVML totals are then rank 0's alone and other ranks get an empty dict.
        """
        if status not in STATUSES:
            raise ValueError(f"finish(status={status!r}): expected one of {STATUSES}")
        if self._summary is not None:
            return self._summary
        if not self._started and self.writer:  # failed before start(): still say what ran and why it stopped
            self._write_manifest({})
        self._write_pending()
        if self._progress is not None:
            self._progress.close()
        if self._sampler is not None:
            self._sampler.stop()
        if self._metrics is not None:
            self._metrics.close()
        collective = status == "completed" or distributed_world() is None
        has_metrics = self._started and self.writer and self.run_dir.metrics.is_file()
        records = read_metrics(self.run_dir.metrics) if has_metrics else []
        steady = steady_records(records, self.spec.telemetry.warmup_steps, self._segment_starts)
        windows = broadcast_from_rank0(step_windows(steady)) if collective else step_windows(steady)
        local = self._local_totals(windows)
        totals = gather_reduce(local, FINISH_OPS) if collective else local
        summary = None
        if self.writer:
            identity = {
                "run_id": self.spec.run_id,
                "stage": self.spec.stage_name,
                "arm": self.spec.arm,
                "recipe": self.spec.recipe,
                "emulated": self.emulated,
                "device": self.device_name,
                "world_size": self.world_size,
                "flops_per_token": self.flops_per_token,
                "peak_flops": self.peak_flops,
            }
            summary = build_summary(
                records,
                identity=identity,
                status=status,
                reason=reason,
                warmup_steps=self.spec.telemetry.warmup_steps,
                segment_starts=self._segment_starts,
                totals=totals,
            )
            atomic_write_json(self.run_dir.summary, summary)
            nvml_status = dict(self._nvml_status)
            if self._sampler is not None:
                nvml_status["energy_method"] = self._sampler.energy_method
            self.run_dir.update_manifest(status=status, reason=reason, ended_at=utc_now(), nvml=nvml_status)
            if self._loggers is not None:
                self._loggers.finish(status, summary)
        self._summary = (broadcast_from_rank0(summary) if collective else summary) or {}
        return self._summary

    def _local_totals(self, windows: list[tuple[float, float]]) -> dict:
        """This rank's end-of-run totals (ranks.FINISH_OPS); the NVML ones None without a sampler."""
        nvml = dict.fromkeys(("nvml_peak_memory_bytes", "energy_j", "steady_energy_j"))
        if self._sampler is not None:
            nvml = self._sampler.totals(windows)
        return {"rss_peak_bytes": rss_peak_bytes(), **nvml}
