"""Helpers shared by eval tests: a tiny random-init Qwen2 checkpoint and run directories."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from harness.data.arith import problems, sft_records
from harness.suite import RunSpec, load_suite, plan

FAKE_VLLM = Path(__file__).parents[1] / "fixtures" / "eval" / "fake_vllm.py"
FAKE_VLLM_COMMAND = [sys.executable, str(FAKE_VLLM)]
CHATML = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def build_tiny_checkpoint(folder: Path) -> Path:
    """A 2-layer Qwen2ForCausalLM (random init) and a BPE tokenizer trained on arithmetic text, saved HF-style."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    texts = [p["problem"] for p in problems(200, "train")]
    texts += [m["content"] for r in sft_records(200) for m in r["messages"]] + ["user", "assistant", "\\boxed{}"]
    raw.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=specials))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHATML
    )
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_run_dir(root: Path, checkpoint: Path | None, eval_overrides: list[str] = ()) -> Path:
    """A run dir like the pipeline writes: spec.json from the smoke suite, checkpoints/final copied in."""
    suite = load_suite(Path(__file__).parents[2] / "suites" / "smoke.toml", list(eval_overrides))
    spec: RunSpec = next(s for s in plan(suite) if s.run_id == "sft-bf16-s0")
    run = root / "runs" / "smoke" / spec.run_id
    run.mkdir(parents=True)
    (run / "spec.json").write_text(json.dumps(spec.model_dump(mode="json"), indent=2))
    if checkpoint is not None:
        shutil.copytree(checkpoint, run / "checkpoints" / "final")
    return run


def train_on_arith(checkpoint: Path, folder: Path, steps: int = 300) -> Path:
    """A copy of `checkpoint` fine-tuned on the arith SFT chats with a plain torch loop (assistant tokens only).

    Plain torch instead of `harness train`, so the eval tests depend on nothing but a Hugging Face folder.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    rows = []
    for record in sft_records(2000):
        prompt = tokenizer.apply_chat_template(record["messages"][:1], add_generation_prompt=True, tokenize=False)
        full = tokenizer.apply_chat_template(record["messages"], tokenize=False)
        ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        rows.append((ids, n_prompt))
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    for i, (ids, n_prompt) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        batch = torch.randint(0, len(rows), (32,))
        loss = model(input_ids=input_ids[batch], attention_mask=input_ids[batch] != tokenizer.pad_token_id,
                     labels=labels[batch]).loss  # fmt: skip
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def processes_running(marker: str) -> list[int]:
    """Live (non-zombie) processes whose command line mentions marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found
