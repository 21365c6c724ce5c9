"""The benchmarked workloads: shapes, recipes, and a ready-to-time step for each case.

Every case is built the way the trainer builds a run: FP32 master weights, the recipe's
backend.convert() on the fresh module, the same torch.compile for every arm when enabled
(per module, as harness.train.model.apply_runtime_options does), and the forward under
backend.autocast(). So BF16 and FP8 arms differ only in the recipe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from harness.errors import HarnessError
from harness.train.model import PRESETS, QWEN_VOCAB, apply_runtime_options, build_model, preset_config
from harness.train.precision.registry import get_backend

# Every hardware recipe; one its backend refuses here (no TE, not Blackwell, ...) is skipped with the refusal.
RECIPES = (
    "bf16",
    "te:delayed",
    "te:current",
    "te:blockwise",
    "te:mxfp8",
    "torchao:tensorwise",
    "torchao:rowwise",
    "torchao:blockwise",
    "torchao:tensorwise+swiglu8",  # changes the MLP only: no `linear` case
)
LAYER_CASES = ("linear", "mlp", "decoder_layer")


@dataclass(frozen=True)
class Shape:
    """A Qwen2.5 preset's widths and the batch layout of one step (8192 tokens in both presets)."""

    preset: str
    batch: int
    seq_len: int

    @property
    def tokens(self) -> int:
        return self.batch * self.seq_len

    def describe(self) -> dict:
        p = PRESETS[self.preset]
        return dict(
            preset=self.preset, batch=self.batch, seq_len=self.seq_len, tokens=self.tokens,
            hidden_size=p["hidden_size"], intermediate_size=p["intermediate_size"],
            num_attention_heads=p["num_attention_heads"], num_key_value_heads=p["num_key_value_heads"],
        )  # fmt: skip


SHAPES = {
    "qwen2.5-1.5b": Shape("qwen2.5-1.5b", batch=4, seq_len=2048),
    "qwen2.5-7b": Shape("qwen2.5-7b", batch=2, seq_len=4096),
}


@dataclass(frozen=True)
class BenchModelConfig:
    """The fields of harness.suite.ModelConfig that build_model/apply_runtime_options read.

    A plain dataclass so the benchmarks need no pydantic on the GPU image.
    """

    preset: str
    num_layers: int | None = None
    compile: bool = False
    path: str | None = None
    attention: str = "sdpa"
    activation_checkpointing: bool = False
    master_dtype: str = "float32"


@dataclass
class Timed:
    """One case ready to time: `step` runs it once and waits for the GPU; `reset` runs untimed before each round."""

    step: Callable[[], None]
    reset: Callable[[], None]


def available_backend(recipe: str, device: torch.device):
    """(the recipe's backend, None), or (None, its refusal text) where it cannot run here (e.g. no FP8 on this GPU)."""
    backend = get_backend(recipe)
    try:
        backend.check_available(device)
    except HarnessError as exc:
        return None, str(exc)
    return backend, None


def backend_for(recipe: str, device: torch.device):
    """The recipe's backend, or a pytest skip carrying its refusal text."""
    backend, refused = available_backend(recipe, device)
    if refused:
        pytest.skip(f"{recipe} unavailable: {refused}")
    return backend


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _holder(block: nn.Module) -> nn.Module:
    """Put `block` at model.layers[0], the only place backend.convert() swaps linears (as in a decoder LM)."""
    holder = nn.Module()
    holder.model = nn.Module()
    holder.model.layers = nn.ModuleList([block])
    return holder


class _MLPLayer(nn.Module):
    """The MLP held as a layer's `mlp`, where backend.convert() finds it (the +swiglu8 recipes swap it)."""

    def __init__(self, mlp: nn.Module):
        super().__init__()
        self.mlp = mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


def _block(case: str, shape: Shape, device: torch.device):
    """(module, call) for one layer case; `call(module, x)` runs its forward on [batch, seq, hidden] input."""
    from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer, Qwen2MLP, Qwen2RotaryEmbedding

    config = preset_config(BenchModelConfig(shape.preset, num_layers=1), QWEN_VOCAB)
    config._attn_implementation = "sdpa"  # what the trainer's default uses (flash kernel, causal, no mask)
    if case == "linear":
        # The largest GEMM of the layer: the MLP's up projection, hidden -> intermediate.
        return nn.Sequential(nn.Linear(config.hidden_size, config.intermediate_size, bias=False)), lambda m, x: m(x)
    if case == "mlp":
        return _MLPLayer(Qwen2MLP(config)), lambda m, x: m(x)
    if case == "decoder_layer":
        rotary = Qwen2RotaryEmbedding(config)
        position_ids = torch.arange(shape.seq_len, device=device).unsqueeze(0).expand(shape.batch, -1)
        probe = torch.empty(1, device=device)
        cos_sin = rotary(probe, position_ids)  # computed once per step in the full model, shared by all layers
        return Qwen2DecoderLayer(config, layer_idx=0), lambda m, x: m(x, position_embeddings=cos_sin)
    raise ValueError(f"unknown layer case {case!r}; expected one of {LAYER_CASES}")


def layer_step(case: str, shape: Shape, backend, device: torch.device, compile: bool) -> Timed:
    """Forward and backward of one linear / MLP / decoder layer on `shape.tokens` tokens under `backend`."""
    if case == "linear" and backend.name.endswith("+swiglu8"):
        pytest.skip(f"{backend.name} changes the MLP, not a lone linear")
    torch.manual_seed(0)
    with torch.device(device):
        block, call = _block(case, shape, device)
    block = backend.convert(_holder(block.float())).model.layers[0]
    if compile:
        torch._dynamo.reset()  # a fresh cache per case: no recompile limit, no graphs of earlier cases
        block.compile()
    block.train()
    # FP32 input, as the residual stream and RMSNorm output are in the trainer's FP32-master model.
    x = torch.randn(shape.batch, shape.seq_len, PRESETS[shape.preset]["hidden_size"], device=device, requires_grad=True)
    with backend.autocast(device):
        grad_out = torch.randn_like(call(block, x).detach())  # also the first (compiling) forward

    def step() -> None:
        with backend.autocast(device):
            out = call(block, x)
        out.backward(grad_out)
        _sync(device)

    def reset() -> None:
        block.zero_grad(set_to_none=True)
        x.grad = None
        _sync(device)

    return Timed(step, reset)


def model_step(shape: Shape, backend, device: torch.device, num_layers: int, compile: bool) -> Timed:
    """One training step of the whole model (forward with loss, backward, grad clip 1.0, fused AdamW), as the trainer."""
    cfg = BenchModelConfig(shape.preset, num_layers=num_layers, compile=compile)
    with torch.device(device):  # random init straight on the GPU (seconds faster than on CPU)
        model = build_model(cfg, QWEN_VOCAB, seed=0)
    model = backend.convert(model)
    if compile:
        torch._dynamo.reset()
    apply_runtime_options(model, cfg)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.1, fused=device.type == "cuda")
    generator = torch.Generator(device=device).manual_seed(0)
    ids = torch.randint(0, QWEN_VOCAB, (shape.batch, shape.seq_len), device=device, generator=generator)

    def step() -> None:
        with backend.autocast(device):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)

    return Timed(step, lambda: _sync(device))
