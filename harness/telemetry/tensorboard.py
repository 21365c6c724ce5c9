"""TensorBoard step logger (telemetry.loggers = ["tensorboard"]): event files under <run_dir>/tensorboard,
one scalar per metrics.jsonl field (train/loss ...) and NVML column (nvml/power_w ...), x = step."""

from __future__ import annotations

from harness.errors import InvalidInput


class TensorBoardLogger:
    @classmethod
    def check_available(cls) -> None:
        try:
            import tensorboard  # noqa: F401  (torch's SummaryWriter needs it)
        except ImportError:
            raise InvalidInput(
                "suite telemetry.loggers includes 'tensorboard' but tensorboard is not installed; "
                "pip install 'fp8-parity-harness[tensorboard]' (or pip install tensorboard), "
                "or remove it from telemetry.loggers"
            ) from None

    def __init__(self, run_dir, spec, start_step: int):
        self.check_available()
        from torch.utils.tensorboard import SummaryWriter

        # On a resume, events from after the checkpoint (the steps metrics.jsonl dropped and the
        # loop redoes) are purged, so TensorBoard shows each step once, as metrics.jsonl does.
        purge = {"purge_step": start_step + 1} if start_step else {}
        self._writer = SummaryWriter(log_dir=str(run_dir.tensorboard), **purge)

    def log(self, step: int, scalars: dict) -> None:
        for tag, value in scalars.items():
            self._writer.add_scalar(tag, value, global_step=step)
        self._writer.flush()

    def finish(self, status: str, summary: dict) -> None:
        self._writer.close()
