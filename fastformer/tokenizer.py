"""Word-level tokenizer of the Fastformer reference code, as a PaddleNLP `PretrainedTokenizer`.

Lower-cased text split like nltk's `word_tokenize` (`TOKEN_PATTERN`), vocabulary `[PAD]` 0, `[UNK]` 1, then one token
a line; `encode_batch` is the fast path and gives the same ids as `tokenizer(texts)` (docs/internals.md).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from typing import Dict, Iterable, List, Optional

from paddlenlp.transformers import PretrainedTokenizer

__all__ = ["FastformerTokenizer", "TOKEN_PATTERN"]

TOKEN_PATTERN = r"\w+(?=n't\b)|n't\b|'\w+|\w+|[^\w\s]"


class FastformerTokenizer(PretrainedTokenizer):
    """Lower-casing word/punctuation tokenizer with a vocabulary built from the training texts."""

    resource_files_names = {"vocab_file": "vocab.txt"}
    pretrained_resource_files_map: Dict[str, Dict[str, str]] = {"vocab_file": {}}
    pretrained_init_configuration: Dict[str, dict] = {}
    max_model_input_sizes: Dict[str, Optional[int]] = {}
    model_input_names = ["input_ids", "attention_mask"]
    padding_side = "right"

    def __init__(
        self,
        vocab_file: Optional[str] = None,
        do_lower_case: bool = True,
        pad_token: str = "[PAD]",
        unk_token: str = "[UNK]",
        **kwargs,
    ):
        self.do_lower_case = do_lower_case
        self._pattern = re.compile(TOKEN_PATTERN)
        tokens = [pad_token, unk_token]
        if vocab_file is not None:
            with open(vocab_file, encoding="utf-8") as f:
                tokens = [line.rstrip("\n") for line in f]
            if tokens[:2] != [pad_token, unk_token]:
                raise ValueError(f"{vocab_file}: the vocabulary must start with {pad_token!r} and {unk_token!r}, one token a line")
        self._set_vocab(tokens, source=vocab_file or "the vocabulary")

    def _set_vocab(self, tokens: List[str], source: str) -> None:
        vocab = {token: i for i, token in enumerate(tokens)}
        if len(vocab) != len(tokens) or "" in vocab:
            raise ValueError(f"{source} has empty or repeated tokens")
        self.ids_to_tokens = list(tokens)
        self.vocab = vocab

    @classmethod
    def build_from_corpus(
        cls, texts: Iterable[str], min_freq: int = 2, max_size: Optional[int] = None, **kwargs
    ) -> "FastformerTokenizer":
        """A tokenizer whose vocabulary holds the tokens of `texts` seen at least `min_freq` times.

        Tokens are ordered by decreasing frequency, then alphabetically. `max_size` caps the whole vocabulary,
        `[PAD]` and `[UNK]` included. `kwargs` go to the constructor (e.g. do_lower_case).
        """
        if min_freq < 1 or (max_size is not None and max_size < 2):
            raise ValueError(f"min_freq must be >= 1 and max_size >= 2 (or None), got {min_freq}, {max_size}")
        tokenizer = cls(**kwargs)
        counts: Counter = Counter()
        for text in texts:
            counts.update(tokenizer.tokenize(text))
        specials = tokenizer.ids_to_tokens[:2]
        words = sorted((t for t, n in counts.items() if n >= min_freq and t not in specials), key=lambda t: (-counts[t], t))
        if max_size is not None:
            words = words[: max_size - len(specials)]
        tokenizer._set_vocab(specials + words, source="the corpus")
        return tokenizer

    @property
    def vocab_size(self) -> int:
        return len(self.ids_to_tokens)

    def get_vocab(self) -> Dict[str, int]:
        return dict(self.vocab, **self.added_tokens_encoder)

    def _tokenize(self, text: str, **kwargs) -> List[str]:
        # Same result as TOKEN_PATTERN on the whole text, about twice as fast: most whitespace-separated words are
        # alphanumeric (a single \w+ match) and only the others need the regex.
        findall = self._pattern.findall
        tokens: List[str] = []
        for word in (text.lower() if self.do_lower_case else text).split():
            if word.isalnum():
                tokens.append(word)
            else:
                tokens.extend(findall(word))
        return tokens

    def tokenize(self, text: str, **kwargs) -> List[str]:
        """Word and punctuation tokens of `text` (lower-cased when `do_lower_case`)."""
        return self._tokenize(text)

    def _convert_token_to_id(self, token: str) -> int:
        return self.vocab.get(token, self.vocab[self.unk_token])

    def _convert_id_to_token(self, index: int) -> str:
        return self.ids_to_tokens[index] if 0 <= index < len(self.ids_to_tokens) else self.unk_token

    def convert_tokens_to_string(self, tokens: List[str]) -> str:
        return " ".join(tokens)

    def build_inputs_with_special_tokens(self, token_ids_0: List[int], token_ids_1: Optional[List[int]] = None) -> List[int]:
        """No special tokens: the ids unchanged (pairs are concatenated)."""
        return list(token_ids_0) + list(token_ids_1 or [])

    def encode_batch(self, texts: Iterable[str], max_length: Optional[int] = None) -> Dict[str, List[List[int]]]:
        """Fast path: ids of each text, truncated to `max_length` (no padding), and the matching attention masks."""
        lookup = self.get_vocab() if self.added_tokens_encoder else self.vocab
        get, unk, tokenize = lookup.get, self.vocab[self.unk_token], self._tokenize
        input_ids = [[get(t, unk) for t in tokenize(text)[:max_length]] for text in texts]
        return {"input_ids": input_ids, "attention_mask": [[1] * len(ids) for ids in input_ids]}

    def save_pretrained(self, save_directory, *args, **kwargs):
        # a loaded tokenizer's init_kwargs name the local file it came from: kept out of tokenizer_config.json
        source = self.init_kwargs.pop("special_tokens_map_file", None)
        try:
            return super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            if source is not None:
                self.init_kwargs["special_tokens_map_file"] = source

    def save_resources(self, save_directory: str) -> None:
        """Write the vocabulary to `vocab.txt` in `save_directory`."""
        with open(os.path.join(save_directory, self.resource_files_names["vocab_file"]), "w", encoding="utf-8", newline="\n") as f:
            f.writelines(token + "\n" for token in self.ids_to_tokens)
