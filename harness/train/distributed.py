"""Processes and sharding: torch.distributed from torchrun's environment, FSDP2 over the ranks.

    with distributed(spec.topology.device) as world:   # rank, world_size, device
        model = shard_model(model, world)              # after the precision backend's convert()

One process (no torchrun, or WORLD_SIZE=1) initialises nothing and shards nothing, so a
single-process run is exactly the plain loop. With several, every decoder layer and then the
root become FSDP2 units (`fully_shard`) under ONE MixedPrecisionPolicy shared by every arm:
BF16 parameters for compute, FP32 gradient reduction; the FP32 master weights and optimiser
state stay sharded. NCCL on CUDA, gloo on CPU (what the CPU tests use).
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from harness.errors import InvalidInput

# One policy for every arm, so BF16 and FP8 arms differ only in their FP8 GEMMs (matched runs).
PARAM_DTYPE = torch.bfloat16
REDUCE_DTYPE = torch.float32


@dataclass(frozen=True)
class World:
    """This process's place in the job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def sharded(self) -> bool:
        return self.world_size > 1


def env_world() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) outside torchrun."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def pick_device(choice: str, local_rank: int) -> torch.device:
    """The device of this rank: cuda:LOCAL_RANK when CUDA is chosen (or 'auto' finds it), else CPU."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise InvalidInput("topology.device = 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise InvalidInput(
                f"topology.nproc_per_node: local rank {local_rank} has no GPU ({count} visible); "
                f"start at most {count} processes per node"
            )
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


@contextlib.contextmanager
def distributed(device_choice: str) -> Iterator[World]:
    """Join the process group torchrun describes (if any) for the duration of the block.

    A group that is already initialised (a caller set it up) is used and left alone; one this
    function creates is destroyed on exit, so repeated train() calls in one process work.
    """
    rank, world_size, local_rank = env_world()
    owned = False
    if dist.is_available() and dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    elif world_size > 1:
        device = pick_device(device_choice, local_rank)
        if device.type == "cuda":
            dist.init_process_group("nccl", device_id=device)  # binds the communicator to this GPU
        else:
            dist.init_process_group("gloo")
        rank, world_size, owned = dist.get_rank(), dist.get_world_size(), True
    device = pick_device(device_choice, local_rank if world_size > 1 else 0)
    if world_size == 1:
        yield World(0, 1, 0, device)
        return
    try:
        yield World(rank, world_size, local_rank, device)
    finally:
        # Free the sharded model (its FSDP state holds collectives' work objects and tensors)
        # while the interpreter is fully alive: left to interpreter exit, gloo aborted the
        # process ("terminate called without an active exception") in about 1 of 3 CPU runs
        # under load; with this collect, none in 21.
        gc.collect()
        if owned:
            dist.destroy_process_group()


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        raise InvalidInput(f"topology: cannot shard {type(model).__name__}: it has no model.layers (decoder LMs only)")
    return list(layers)


def shard_model(model: nn.Module, world: World) -> nn.Module:
    """FSDP2 per decoder layer, then the root (embeddings, final norm, lm_head); identity on one process.

    Call after the precision backend converted the model (its FP8 modules are what gets sharded,
    e.g. torchao's float8 weights all-gather in FP8) and before the optimiser is built (it must
    see the sharded DTensor parameters).
    """
    if not world.sharded:
        return model
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

    mesh = dist.device_mesh.init_device_mesh(world.device.type, (world.world_size,))
    policy = MixedPrecisionPolicy(param_dtype=PARAM_DTYPE, reduce_dtype=REDUCE_DTYPE)
    layers = decoder_layers(model)
    for i, layer in enumerate(layers):
        # The last layer's parameters are needed right away by backward: keep them gathered.
        fully_shard(layer, mesh=mesh, mp_policy=policy, reshard_after_forward=i < len(layers) - 1)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    # Each rank's loss is already divided by the global batch's token count, so the global
    # gradient is the plain SUM over ranks, not FSDP's default mean. Forcing SUM comms (factor 1:
    # no extra scaling) also avoids PREMUL_SUM, which gloo lacks. The setters do not recurse.
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)
    return model


def process_rank() -> int:
    """This process's rank (0 without an initialised process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def process_count() -> int:
    """How many processes train together (1 without an initialised process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def barrier() -> None:
    """Wait for every rank (no-op on one process)."""
    if process_count() > 1:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over ranks in place (no-op on one process); returns it."""
    if process_count() > 1:
        dist.all_reduce(tensor)
    return tensor


def full_value(tensor: torch.Tensor) -> torch.Tensor:
    """A plain tensor from a DTensor (e.g. the grad norm clip_grad_norm_ returns under FSDP2)."""
    from torch.distributed.tensor import DTensor

    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
