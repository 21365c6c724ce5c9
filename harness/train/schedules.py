"""Learning-rate schedules as pure functions of the optimiser step (1-based).

    constant: linear warm-up, then lr
    cosine:   linear warm-up, then cosine from lr to min_lr at the last step
    wsd:      linear warm-up, stable at lr, then linear decay to min_lr over the last
              decay_fraction of the steps (warmup-stable-decay, MiniCPM / DeepSeek style);
              decay_only: the whole run is the decay phase, for a run that starts from a
              stable-phase checkpoint

Warm-up: step s <= W gets lr * s / W, so the first step already moves the weights.
"""

from __future__ import annotations

import math

import torch


def warmup_steps(cfg, total_steps: int) -> int:
    if cfg.warmup_steps is not None:
        return min(cfg.warmup_steps, total_steps)
    if cfg.warmup_fraction is not None:
        return min(round(cfg.warmup_fraction * total_steps), total_steps)
    return 0


def lr_at(step: int, total_steps: int, cfg, lr: float, min_lr: float) -> float:
    """Learning rate used by optimiser step `step` (1..total_steps) under ScheduleConfig `cfg`."""
    if cfg.kind == "wsd" and cfg.decay_only:
        return _linear(lr, min_lr, (step - 1) / max(total_steps - 1, 1))
    warmup = warmup_steps(cfg, total_steps)
    if step <= warmup:
        return lr * step / warmup
    if cfg.kind == "constant":
        return lr
    if cfg.kind == "cosine":
        progress = (step - warmup) / max(total_steps - warmup, 1)
        return min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
    if cfg.kind == "wsd":
        decay = round(cfg.decay_fraction * total_steps)
        decay_start = total_steps - decay  # last stable step
        if step <= decay_start or decay == 0:
            return lr
        return _linear(lr, min_lr, (step - decay_start) / decay)
    raise ValueError(f"unknown schedule kind {cfg.kind!r}")


def _linear(start: float, end: float, fraction: float) -> float:
    return start + (end - start) * min(max(fraction, 0.0), 1.0)


def build_scheduler(optimizer, cfg, total_steps: int, lr: float, min_lr: float):
    """A LambdaLR whose k-th scheduler position gives the lr of optimiser step k + 1."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: lr_at(k + 1, total_steps, cfg, lr, min_lr) / lr)
