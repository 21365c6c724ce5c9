"""The training loss: Hugging Face's causal-LM loss, or the same loss computed in chunks.

With Qwen2.5's 151,936-token vocabulary the logits of one 8192-token micro-batch hold 1.2
billion values: 2.5 GB in BF16, 5 GB once upcast to FP32 for the cross-entropy, and as much
again for their gradients, alive together around the loss in every arm. `model.loss_chunk_tokens
= N` computes lm_head and the cross-entropy N tokens at a time under activation
checkpointing, so one chunk's logits exist at a time; lm_head's matmul runs once more in the
backward. The value and the gradients are those of Hugging Face's loss (tests/train/test_chunked_loss.py):
FP32 cross-entropy of every position against the next label, summed and divided by the
label-token count of the global batch.

One process only: under FSDP2 the root's parameters (embedding, final norm, lm_head) are
gathered inside the root module's forward, which the chunked loss goes around.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

IGNORE_INDEX = -100


def causal_lm_loss(model, input_ids: torch.Tensor, labels: torch.Tensor, num_items_in_batch,
                   chunk_tokens: int | None = None, **model_kwargs) -> torch.Tensor:  # fmt: skip
    """Sum of next-token cross-entropies over `labels` (-100 ignored) / num_items_in_batch.

    model_kwargs (position_ids, segments of packed rows: harness/train/attention.py) go to the model.
    """
    if not chunk_tokens:
        return model(input_ids=input_ids, labels=labels, num_items_in_batch=num_items_in_batch, **model_kwargs).loss
    hidden = model.model(input_ids=input_ids, **model_kwargs).last_hidden_state
    targets = F.pad(labels, (0, 1), value=IGNORE_INDEX)[:, 1:]  # position t predicts labels[t + 1]
    hidden = hidden.reshape(-1, hidden.shape[-1])
    targets = targets.reshape(-1)
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, targets.numel(), chunk_tokens):
        stop = start + chunk_tokens
        total = total + checkpoint(_chunk_loss, model.lm_head, hidden[start:stop], targets[start:stop],
                                   use_reentrant=False)  # fmt: skip
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


def _chunk_loss(lm_head, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = lm_head(hidden).float()  # the FP32 upcast Hugging Face's ForCausalLMLoss does
    return F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")
