"""FP8 parity harness: matched BF16 and FP8 training runs, evaluation, reports and gates."""

__version__ = "0.1.0"
