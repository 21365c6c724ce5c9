"""Step timing, memory, tokens/s, MFU, NVML sampling, manifest and steady-state summary of a run.

See docs/TELEMETRY.md for what every recorded field means. Telemetry (torch) is imported on first
use, so light modules of this package (wandb_offline.py for `harness import`) load without torch.
"""

from harness.telemetry.flops import flops_per_token, peak_flops

__all__ = ["Telemetry", "flops_per_token", "peak_flops"]


def __getattr__(name: str):
    if name == "Telemetry":
        from harness.telemetry.recorder import Telemetry

        return Telemetry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
