from types import SimpleNamespace

import pytest
import torch

from harness.train.schedules import build_scheduler, lr_at


def cfg(kind, warmup_steps=None, warmup_fraction=None, decay_fraction=0.1, decay_only=False):
    return SimpleNamespace(
        kind=kind,
        warmup_steps=warmup_steps,
        warmup_fraction=warmup_fraction,
        decay_fraction=decay_fraction,
        decay_only=decay_only,
    )


def test_wsd_warms_up_holds_then_decays_linearly_to_min_lr():
    c = cfg("wsd", warmup_steps=2, decay_fraction=0.2)  # 10 steps: warm-up 1-2, stable 3-8, decay 9-10
    got = [lr_at(s, 10, c, 1.0, 0.1) for s in range(1, 11)]
    assert got == pytest.approx([0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.55, 0.1])


def test_wsd_decay_only_goes_from_lr_to_min_lr_over_the_whole_run():
    got = [lr_at(s, 5, cfg("wsd", warmup_steps=3, decay_only=True), 1.0, 0.2) for s in range(1, 6)]
    assert got == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])


def test_cosine_with_warmup_fraction_hits_half_way_and_min_lr_at_the_end():
    c = cfg("cosine", warmup_fraction=0.2)  # 10 steps -> 2 warm-up steps, cosine over steps 3..10
    assert lr_at(1, 10, c, 1.0, 0.0) == pytest.approx(0.5)
    assert lr_at(2, 10, c, 1.0, 0.0) == pytest.approx(1.0)
    assert lr_at(6, 10, c, 1.0, 0.0) == pytest.approx(0.5)  # progress 4/8: cos(pi/2) = 0
    assert lr_at(10, 10, c, 1.0, 0.0) == pytest.approx(0.0)


def test_constant_schedule_stays_at_lr_after_warmup():
    assert [lr_at(s, 4, cfg("constant", warmup_steps=1), 2.0, 0.0) for s in range(1, 5)] == [2.0] * 4


def test_lambda_scheduler_gives_step_k_the_lr_of_lr_at_k():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    c = cfg("wsd", warmup_steps=2, decay_fraction=0.2)
    sched = build_scheduler(opt, c, 10, 1.0, 0.1)
    seen = []
    for _ in range(10):
        seen.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert seen == pytest.approx([lr_at(s, 10, c, 1.0, 0.1) for s in range(1, 11)])
