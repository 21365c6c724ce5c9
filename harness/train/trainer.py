"""The training loop: model, data, optimiser, loop, save (nanoGPT-shaped; precision-agnostic).

    train(spec, run_dir) builds the model from the seed, lets the precision backend convert it
    (after init, so matched arms start from the same weights), trains spec.stage's steps with
    gradient accumulation to the global batch, checkpoints, exports checkpoints/final/, and
    returns Telemetry's summary. Calling it again resumes from the latest complete checkpoint;
    calling it on a finished run returns the stored summary.

The loop never branches on precision: a backend's convert() and autocast() are all it sees.
"""

from __future__ import annotations

import contextlib
import signal
import statistics
from pathlib import Path

import torch

from harness.errors import InvalidInput, RunFailed, Stopped
from harness.preflight import check_seq_len
from harness.signals import handling, interrupt_requested, interrupts_once, signals_held
from harness.store import RunDir
from harness.telemetry import Telemetry, flops_per_token
from harness.telemetry.kernels import StepProfiler, profiled_steps
from harness.train import attention
from harness.train.batches import Batches, attention_context, steps_for
from harness.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from harness.train.data import build_data
from harness.train.distributed import World, all_reduce_sum, barrier, distributed, full_value, shard_model
from harness.train.export import export_final
from harness.train.loss import causal_lm_loss
from harness.train.model import apply_runtime_options, build_model
from harness.train.precision.registry import get_backend
from harness.train.schedules import build_scheduler
from harness.train.tokenizer import load_tokenizer

SPIKE_WINDOW = 20  # recent losses whose median a spike is measured against
SPIKE_MIN_HISTORY = 5


def train(spec, run_dir: RunDir, *, quiet: bool = False) -> dict:
    """Train one run (one stage of one arm and seed) and return its summary dict.

    Under torchrun every rank calls this; it joins the process group from the environment and
    shards the model with FSDP2 (harness.train.distributed). One process runs unsharded.
    """
    if _finished(run_dir):
        return run_dir.read_summary()
    if quiet:
        import transformers

        transformers.utils.logging.disable_progress_bar()  # "Loading weights" / "Writing model shards" bars
    with distributed(spec.topology.device) as world:
        return _train(spec, run_dir, world, quiet)


def _train(spec, run_dir: RunDir, world: World, quiet: bool) -> dict:
    rank, world_size, device = world.rank, world.world_size, world.device
    _check_batch(spec, world_size)
    check_seq_len(spec, str(run_dir.spec))  # `harness run` checked it too; a launcher's rank may not have
    backend = get_backend(spec.recipe)
    backend.check_available(device)

    tokenizer = load_tokenizer(spec.model)
    data = build_data(spec.stage, tokenizer, cache_dir=run_dir.path.parent / ".cache")
    total_steps = steps_for(spec.stage, data, spec.seed)
    # One process: random init straight on the device (identical for every arm, minutes faster at
    # 7B). Under FSDP2 every rank builds the same full model on CPU and shard_model distributes it.
    with torch.device(device if world_size == 1 else "cpu"):
        model = build_model(spec.model, len(tokenizer), spec.seed, init_path=_init_path(spec, run_dir))
    model = model.to(device)
    if spec.stage.packed or spec.stage.document_mask:
        attention.use(model)  # segment-wise causal attention, the same kernel in every arm
    model = backend.convert(model)
    apply_runtime_options(model, spec.model)
    model = shard_model(model, world)  # identity on one process
    model.train()

    optim = spec.stage.optim
    optimizer = torch.optim.AdamW(
        _param_groups(model, optim.weight_decay), lr=optim.lr, betas=optim.betas, eps=optim.eps,
        fused=device.type == "cuda",
    )  # fmt: skip
    scheduler = build_scheduler(optimizer, spec.stage.schedule, total_steps, optim.lr, optim.min_lr)
    telemetry = Telemetry(
        run_dir, spec, device=device, flops_per_token=flops_per_token(model.config, attention_context(spec.stage, data)),
        total_steps=total_steps, quiet=quiet, world_size=world_size, rank=rank,
    )  # fmt: skip
    start_step, position = 0, None
    checkpoint = latest_checkpoint(run_dir.checkpoints)
    if checkpoint is not None:
        try:
            start_step, position = load_checkpoint(checkpoint, model, optimizer, scheduler)
        except InvalidInput as exc:  # a torn or planted checkpoint: the manifest says so, not "running"
            telemetry.finish("failed", str(exc))
            raise
    batches = Batches(
        data, spec.stage, spec.seed, world_size=world_size, pad_id=tokenizer.pad_token_id,
        eos_id=tokenizer.eos_token_id, position=position,
    )  # fmt: skip

    profiled = profiled_steps(spec.telemetry.warmup_steps, spec.telemetry.profile_steps, total_steps)
    profiler = StepProfiler(run_dir, profiled, device, write=rank == 0)
    recent: list[float] = []
    telemetry.start(start_step)  # the manifest says "running" from here: the try below records how it ends
    stopped_at = None  # the step after which SIGUSR1 stopped the run, its checkpoint written
    with interrupts_once(), stop_requests() as stop:
        try:
            for step in range(start_step + 1, total_steps + 1):
                with profiler.around(step), telemetry.step(step) as rec:
                    lr = scheduler.get_last_lr()[0]
                    batch = batches.next()
                    loss, grad_norm = train_step(
                        model, optimizer, backend, batch.micro_batches[rank], batch, spec, device
                    )
                    scheduler.step()
                    mine = batch.micro_batches[rank]
                    rec.update(loss=loss, lr=lr, grad_norm=grad_norm, tokens=sum(mb.tokens for mb in mine),
                               processed_tokens=sum(mb.input_ids.size for mb in mine))  # fmt: skip
                check_divergence(step, float(loss), recent, spec.divergence)
                every = spec.stage.checkpoint_every
                stopping = step < total_steps and stop.requested(device)
                if step < total_steps and (stopping or (every and step % every == 0)):
                    # Flag (and flush) the step's metrics line first, so a checkpoint never exists
                    # without the metrics of the steps it contains; a kill mid-save resumes earlier.
                    telemetry.mark_checkpoint(step)
                    save_checkpoint(run_dir.checkpoints, step, model, optimizer, scheduler, batches.position)
                if stopping:
                    stopped_at = step
                    break
            if stopped_at is None:
                export_final(run_dir.final_checkpoint, model, tokenizer, getattr(torch, spec.model.dtype),
                             backend.export_state)  # fmt: skip
        except RunFailed as exc:
            record_end(telemetry, "failed", str(exc))
            raise
        except KeyboardInterrupt:
            record_end(telemetry, "interrupted", INTERRUPTED)
            raise
        except Exception as exc:
            record_end(telemetry, "failed", f"{type(exc).__name__}: {exc}")
            raise
        if stopped_at is not None:
            reason = (f"stopped by SIGUSR1 after step {stopped_at} of {total_steps}, its checkpoint written; "
                      "run the same command again to resume")  # fmt: skip
            record_end(telemetry, "interrupted", reason)
            barrier()  # no rank exits (torchrun then stops the others) before rank 0 has recorded the stop
            raise Stopped(f"{spec.run_id}: {reason}")
        with signals_held():
            return telemetry.finish("completed")


INTERRUPTED = "interrupted by the user"


def record_end(telemetry, status: str, reason: str) -> None:
    """Record how the run ended, with Ctrl-C and SIGTERM held off so nothing cuts it short.

    Under torchrun a Ctrl-C can end a peer rank first, so this rank's collective fails before its own
    SIGINT is handled. That signal may land as the recording starts (caught below), or only once
    signals are held (dropped) or after the failure is recorded. The run ended because of the
    interrupt either way: `harness launch` flags the stop before it hands the signal on, so a failure
    recorded while that flag is there is recorded as an interruption.
    """
    if status == "failed" and interrupt_requested(telemetry.run_dir.path):
        status, reason = "interrupted", INTERRUPTED
    try:
        with signals_held():
            telemetry.finish(status, reason)
    except KeyboardInterrupt:
        with signals_held():
            telemetry.finish("interrupted", INTERRUPTED)
        raise


class StopRequest:
    """SIGUSR1 asks a run to stop after its current step with a checkpoint (Slurm's `--signal=USR1@120`
    before a time limit or preemption; `kill -USR1`). Every rank must stop after the same step, so
    under torchrun the ranks agree on it (a one-element all-reduce per step) before any saves."""

    def __init__(self):
        self.signalled = False

    def requested(self, device: torch.device) -> bool:
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return self.signalled
        flag = torch.tensor([1.0 if self.signalled else 0.0], device=device)
        return bool(all_reduce_sum(flag).item() > 0)


@contextlib.contextmanager
def stop_requests():
    """A StopRequest that SIGUSR1 sets inside the block (main thread only; the previous handler after it)."""
    stop = StopRequest()

    def handler(signum, frame):
        stop.signalled = True

    with handling([signal.SIGUSR1], handler):
        yield stop


def train_step(model, optimizer, backend, micro_batches, step, spec, device):
    """One optimiser step over this rank's micro-batches of a global batch: accumulate, clip, step.

    The loss is summed over label tokens and divided by the global batch's label-token count
    (not averaged per micro-batch), so every token weighs the same, padded or packed.
    Returns (mean token loss of the global batch, grad norm before clipping).
    """
    loss_sum = torch.zeros((), device=device)
    for mb in micro_batches:
        ids = torch.from_numpy(mb.input_ids).to(device, non_blocking=True)
        labels = torch.from_numpy(mb.labels).to(device, non_blocking=True)
        extra = {}
        if mb.position_ids is not None:
            extra["position_ids"] = torch.from_numpy(mb.position_ids).to(device, non_blocking=True)
        if mb.segments is not None:
            extra["segments"] = attention.Segments.of(mb.segments, device)
        with backend.autocast(device):
            loss = causal_lm_loss(model, ids, labels, step.label_tokens, spec.model.loss_chunk_tokens, **extra)
        loss.backward()
        loss_sum += loss.detach()
    # FSDP2 has summed the gradients over ranks during backward (shard_model); each rank's loss
    # is divided by the global token count, so the sums are the global batch's loss and gradient.
    all_reduce_sum(loss_sum)
    clip = spec.stage.optim.grad_clip if spec.stage.optim.grad_clip is not None else float("inf")
    grad_norm = full_value(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss_sum, grad_norm


def check_divergence(step: int, loss: float, recent: list[float], cfg) -> None:
    """Raise RunFailed on NaN/Inf, loss above max_loss, or a spike above spike_factor x recent median."""
    if loss != loss or loss in (float("inf"), float("-inf")):
        raise RunFailed(f"step {step}: loss is {loss} (diverged)")
    if cfg.max_loss is not None and loss > cfg.max_loss:
        raise RunFailed(f"step {step}: loss {loss:.4g} exceeds divergence.max_loss = {cfg.max_loss}")
    if cfg.spike_factor is not None and len(recent) >= SPIKE_MIN_HISTORY:
        median = statistics.median(recent[-SPIKE_WINDOW:])
        if loss > cfg.spike_factor * median:
            raise RunFailed(
                f"step {step}: loss {loss:.4g} spiked above divergence.spike_factor x recent median "
                f"({cfg.spike_factor} x {median:.4g})"
            )
    recent.append(loss)


def _param_groups(model, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only; biases and norm gains are not decayed (nanoGPT)."""
    params = [p for p in model.parameters() if p.requires_grad]
    unique = list({id(p): p for p in params}.values())  # tied embeddings appear once
    return [
        {"params": [p for p in unique if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in unique if p.dim() < 2], "weight_decay": 0.0},
    ]


def _finished(run_dir: RunDir) -> bool:
    if not run_dir.final_checkpoint.is_dir() or not run_dir.manifest.is_file() or not run_dir.summary.is_file():
        return False
    return run_dir.read_manifest().get("status") == "completed"


def _init_path(spec, run_dir: RunDir) -> Path | None:
    if not spec.init_from_run:
        return None
    path = run_dir.sibling(spec.init_from_run).final_checkpoint
    if not (path / "config.json").is_file():
        raise InvalidInput(
            f"{path}: stage {spec.stage_name} starts from run {spec.init_from_run}, which has no final checkpoint; "
            f"train stage {spec.stage.init_from} first"
        )
    return path


def _check_batch(spec, world_size: int) -> None:
    """The suite checks its own topology; a resume on another world size must divide the batch too."""
    stage = spec.stage
    if not stage.packed and stage.global_batch_size % (stage.micro_batch_size * world_size):
        raise InvalidInput(
            f"stages.{spec.stage_name}.global_batch_size: {stage.global_batch_size} is not a multiple of "
            f"micro_batch_size x world size ({stage.micro_batch_size} x {world_size} processes running); "
            f"change the batch sizes or the number of processes"
        )
    if spec.model.loss_chunk_tokens and world_size > 1:
        raise InvalidInput(
            f"model.loss_chunk_tokens: the chunked loss runs in one process only ({world_size} processes "
            "running); remove it from the suite or run one process"
        )
