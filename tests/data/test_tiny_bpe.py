import pytest

from harness.data import tiny_bpe


def test_tiny_bpe_training_is_deterministic():
    assert tiny_bpe.train_tiny_bpe().to_str() == tiny_bpe.train_tiny_bpe().to_str()


def test_tiny_bpe_trains_once_and_then_loads_from_the_cache(private_cache, monkeypatch):
    path = tiny_bpe.tiny_bpe_file()
    assert path.is_file() and path.is_relative_to(private_cache)
    assert path.parent.name == f"tiny-bpe-{tiny_bpe.corpus_key()}"
    monkeypatch.setattr(tiny_bpe, "train_tiny_bpe", lambda: pytest.fail("retrained despite the cache"))
    assert tiny_bpe.tiny_bpe_file() == path


def test_tiny_bpe_has_the_chatml_specials_first_and_a_4k_vocabulary(private_cache):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tiny_bpe.tiny_bpe_file()))
    assert [tok.token_to_id(t) for t in tiny_bpe.SPECIAL_TOKENS] == [0, 1, 2]
    assert tok.get_vocab_size() == tiny_bpe.VOCAB_SIZE
