from harness.train.sft import IGNORE, sft_example

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2 + 3?"},
    {"role": "assistant", "content": "It is 5."},
    {"role": "user", "content": "And 4 + 4?"},
    {"role": "assistant", "content": "It is 8."},
]


def trained_text(tok, ids, labels):
    """Decode each contiguous run of trained tokens separately."""
    runs, current = [], []
    for token, label in zip(ids, labels, strict=True):
        if label == IGNORE:
            if current:
                runs.append(tok.decode(current))
                current = []
        else:
            assert label == token
            current.append(token)
    if current:
        runs.append(tok.decode(current))
    return runs


def test_only_assistant_turns_and_their_end_token_are_trained_in_a_multi_turn_chat(tiny_tokenizer):
    ids, labels = sft_example(tiny_tokenizer, CHAT)
    assert trained_text(tiny_tokenizer, ids, labels) == ["It is 5.<|im_end|>", "It is 8.<|im_end|>"]


def test_system_user_and_role_headers_are_masked(tiny_tokenizer):
    ids, labels = sft_example(tiny_tokenizer, CHAT)
    masked = tiny_tokenizer.decode([t for t, label in zip(ids, labels, strict=True) if label == IGNORE])
    assert "Be brief." in masked and "What is 2 + 3?" in masked and "And 4 + 4?" in masked
    assert masked.count("<|im_start|>assistant") == 2
    assert "It is" not in masked


def test_qwen_tokenizer_masks_the_same_way(harness_cache):
    from harness.suite import ModelConfig
    from harness.train.tokenizer import load_tokenizer

    tok = load_tokenizer(ModelConfig(preset="qwen2.5-0.5b"))
    ids, labels = sft_example(tok, CHAT)
    assert trained_text(tok, ids, labels) == ["It is 5.<|im_end|>", "It is 8.<|im_end|>"]
