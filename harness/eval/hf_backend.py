"""In-process generation with a Hugging Face model (CPU or one GPU): the fallback backend.

`model.generate` draws every row of a batch from one random stream, so a sample would depend
on its batch-mates. This loop samples each row with its own `torch.Generator` seeded from
the sample's seed, so a sample's text depends only on (model, prompt, seed, settings).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

from harness.errors import InvalidInput
from harness.eval.generation import Completion, Request


class TransformersGenerator:
    name = "transformers"

    def __init__(self, checkpoint: str | Path, *, batch_size: int = 16, device: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        checkpoint = Path(checkpoint)
        if not (checkpoint / "config.json").is_file():
            raise InvalidInput(f"{checkpoint}: not a Hugging Face checkpoint (no config.json); train the run first")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        # CPU bf16 matmuls are slow and GPU fp32 wastes memory: pick per device.
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        if not self.tokenizer.chat_template:
            raise InvalidInput(f"{checkpoint}: tokenizer has no chat template; save one (ChatML) with the checkpoint")
        self.model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=dtype).to(self.device).eval()
        self.batch_size = batch_size
        stops = {self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids("<|im_end|>")}
        self.stop_ids = {i for i in stops if isinstance(i, int) and i >= 0}
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.stop_ids)
        # transformers >= 5.2x renamed `past_key_values` to `cache` (argument and output field).
        params = inspect.signature(self.model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        self.extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}  # only the last position's logits

    def generate(self, requests) -> Iterator[tuple[Request, Completion]]:
        # Similar lengths batch together: less padding.
        ordered = sorted(requests, key=lambda r: len(r.messages[-1]["content"]))
        for start in range(0, len(ordered), self.batch_size):
            batch = ordered[start : start + self.batch_size]
            yield from zip(batch, self._generate_batch(batch), strict=True)

    def _generate_batch(self, batch: list[Request]) -> list[Completion]:
        torch = self.torch
        prompts = [
            self.tokenizer.apply_chat_template(list(r.messages), add_generation_prompt=True, tokenize=False)
            for r in batch
        ]
        ids = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        width = max(map(len, ids))
        input_ids = torch.tensor([[self.pad_id] * (width - len(x)) + x for x in ids], device=self.device)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=self.device)
        generators = [torch.Generator(device=self.device).manual_seed(r.seed) for r in batch]
        max_new = max(r.max_tokens for r in batch)
        outputs: list[list[int]] = [[] for _ in batch]
        done = [False] * len(batch)
        reasons = ["length"] * len(batch)  # until a stop token ends the row
        past = None
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        step_ids = input_ids
        with torch.inference_mode():
            for step in range(max_new):
                out = self.model(
                    input_ids=step_ids,
                    attention_mask=mask,
                    position_ids=positions,
                    use_cache=True,
                    **{self.cache_arg: past},
                    **self.extra,
                )
                past = getattr(out, self.cache_arg)
                logits = out.logits[:, -1, :].float()
                next_ids = [self._sample(logits[i], r, generators[i]) for i, r in enumerate(batch)]
                for i, token in enumerate(next_ids):
                    if done[i]:
                        continue
                    if token in self.stop_ids or step >= batch[i].max_tokens:
                        done[i] = True
                        reasons[i] = "stop" if token in self.stop_ids else "length"
                    else:
                        outputs[i].append(token)
                        done[i] = len(outputs[i]) >= batch[i].max_tokens
                if all(done):
                    break
                step_ids = torch.tensor(next_ids, device=self.device).unsqueeze(1)
                mask = torch.cat([mask, torch.ones_like(step_ids)], dim=1)
                positions = positions[:, -1:] + 1
        return [
            Completion(self.tokenizer.decode(o, skip_special_tokens=True), len(o), reason)
            for o, reason in zip(outputs, reasons, strict=True)
        ]

    def _sample(self, logits, request: Request, generator) -> int:
        torch = self.torch
        if request.temperature == 0:
            return int(logits.argmax())
        probs = torch.softmax(logits / request.temperature, dim=-1)
        if request.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            keep = sorted_probs.cumsum(-1) - sorted_probs < request.top_p  # always keeps the top token
            sorted_probs = sorted_probs * keep
            probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        return int(torch.multinomial(probs, 1, generator=generator))
