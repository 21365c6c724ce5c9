import pytest

from harness.errors import InvalidInput
from harness.suite import ModelConfig
from harness.train.tokenizer import load_tokenizer


def test_qwen_tokenizer_built_offline_matches_qwen25_ids(harness_cache):
    tok = load_tokenizer(ModelConfig(preset="qwen2.5-7b"))
    # Qwen2.5: "Hello" = 9707, " world" = 1879; digits split one by one; specials from 151643.
    assert tok.encode("Hello world 12", add_special_tokens=False) == [9707, 1879, 220, 16, 17]
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [151643, 151644, 151645]
    assert len(tok) == 151665
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|endoftext|>"


def test_tiny_bpe_is_byte_level_with_chatml_specials_and_round_trips(tiny_tokenizer):
    text = "def f(x):\n    return x ** 2  # héllo ✓"
    assert tiny_tokenizer.decode(tiny_tokenizer.encode(text, add_special_tokens=False)) == text
    assert 2048 <= len(tiny_tokenizer) <= 4096
    rendered = tiny_tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_default_tokenizer_is_tiny_bpe_for_tiny_and_qwen_for_qwen_presets():
    from harness.train.tokenizer import default_tokenizer_name

    assert default_tokenizer_name(ModelConfig(preset="tiny")) == "builtin:tiny-bpe"
    assert default_tokenizer_name(ModelConfig(preset="qwen2.5-1.5b")) == "qwen"
    assert default_tokenizer_name(ModelConfig(path="/models/x")) == "/models/x"


def test_unknown_tokenizer_name_is_invalid_input():
    with pytest.raises(InvalidInput, match="model.tokenizer"):
        load_tokenizer(ModelConfig(preset="tiny", tokenizer="no-such-tokenizer"))


@pytest.mark.parametrize("name", ["builtin:tiny-bpe", "qwen"])
def test_exported_tokenizer_reloads_with_the_same_ids(name, tmp_path, harness_cache):
    """Eval reloads checkpoints/final with AutoTokenizer (a Qwen2Tokenizer for qwen2 configs):
    it must split text exactly as training did, digits included, or the model sees other ids."""
    import torch
    from transformers import AutoTokenizer

    from harness.train.export import export_final
    from harness.train.model import build_model

    cfg = ModelConfig(preset="tiny", tokenizer=name)
    tok = load_tokenizer(cfg)
    model = build_model(cfg, len(tok), seed=0)
    export_final(tmp_path / "final", model, tok, torch.float32)
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "final")
    text = "<|im_start|>user\nAna has 12 apples and gets 7 more. Héllo?<|im_end|>\n<|im_start|>assistant\n"
    assert reloaded(text, add_special_tokens=False)["input_ids"] == tok(text, add_special_tokens=False)["input_ids"]
