"""Step timing, memory, tokens/s, MFU, NVML sampling, manifest and steady-state summary of a run.

See docs/TELEMETRY.md for what every recorded field means.
"""

from harness.telemetry.flops import flops_per_token, peak_flops
from harness.telemetry.recorder import Telemetry

__all__ = ["Telemetry", "flops_per_token", "peak_flops"]
