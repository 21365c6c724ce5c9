"""Optional TensorBoard event files (telemetry.tensorboard = true), from the same step records
as metrics.jsonl, under <run_dir>/tensorboard: one scalar per numeric field, x = step."""

from __future__ import annotations

from pathlib import Path

from harness.errors import InvalidInput

SCALARS = (
    "loss",
    "lr",
    "grad_norm",
    "tokens",
    "step_time_s",
    "tokens_per_s",
    "mfu",
    "peak_alloc_bytes",
    "peak_reserved_bytes",
)


class TensorBoardWriter:
    def __init__(self, log_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise InvalidInput(
                "suite telemetry.tensorboard = true but tensorboard is not installed; "
                "pip install tensorboard, or set telemetry.tensorboard = false"
            ) from None
        self._writer = SummaryWriter(log_dir=str(log_dir))

    def write(self, record: dict) -> None:
        for name in SCALARS:
            value = record.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                self._writer.add_scalar(f"train/{name}", value, global_step=record["step"])
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
