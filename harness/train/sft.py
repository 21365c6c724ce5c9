"""One SFT conversation -> token ids and labels that train only on the assistant's turns.

The chat template renders the conversation; an assistant turn's characters are those between the
rendering of the chat before it (with the generation prompt `<|im_start|>assistant\\n`) and the
rendering that includes it, minus trailing whitespace. So labels cover the reply and its closing
`<|im_end|>`, the token that teaches the model to stop, and nothing the user or system wrote.
Works for any template whose renderings of successive prefixes extend each other (ChatML does).
"""

from __future__ import annotations

from harness.errors import InvalidInput

IGNORE = -100


def _render(tokenizer, messages: list[dict], generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def assistant_spans(tokenizer, messages: list[dict], where: str) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the [start, end) character spans of each assistant turn."""
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and "role" in m and "content" in m for m in messages
    ):
        raise InvalidInput(f"{where}: messages must be a list of {{'role', 'content'}} objects")
    text = _render(tokenizer, messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        if i == 0:
            raise InvalidInput(f"{where}: the conversation starts with an assistant turn; it needs a user turn first")
        before = _render(tokenizer, messages[:i], generation_prompt=True)
        upto = _render(tokenizer, messages[: i + 1])
        if not (upto.startswith(before) and text.startswith(upto)):
            raise InvalidInput(
                f"{where}: the tokenizer's chat template does not render prefixes consistently; use a ChatML template"
            )
        spans.append((len(before), len(upto.rstrip())))
    if not spans:
        raise InvalidInput(f"{where}: no assistant turn to train on")
    return text, spans


def sft_example(tokenizer, messages: list[dict], where: str = "conversation") -> tuple[list[int], list[int]]:
    """(input_ids, labels) with labels = IGNORE outside assistant turns."""
    text, spans = assistant_spans(tokenizer, messages, where)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"]
    labels = [
        token if any(start <= s < end for start, end in spans) else IGNORE
        for token, (s, _) in zip(ids, enc["offset_mapping"], strict=True)
    ]
    return ids, labels
