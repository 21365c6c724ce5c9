"""Built-in offline data: a locally trained tokenizer, a real text corpus, arithmetic sets."""
