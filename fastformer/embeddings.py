"""Initial word embeddings from a GloVe text file (`word v1 v2 ...` a line; plain or gzip) for a tokenizer's vocabulary."""

from __future__ import annotations

import logging
from typing import Any, List, Optional

import numpy as np

from .fileio import open_binary

__all__ = ["load_glove_embeddings"]

logger = logging.getLogger(__name__)

MAX_REPORTED_LINES = 5  # line numbers named in the invalid-UTF-8 warning


def load_glove_embeddings(
    tokenizer: Any, glove_txt_path: str, hidden_size: int, seed: int = 0, init: Optional[np.ndarray] = None
) -> np.ndarray:
    """A float32 [vocab size, hidden_size] matrix: GloVe vectors where found, elsewhere the rows of `init` (a model's
    initial embedding matrix) or, without it, normal(0, 0.02) drawn with `seed`; [PAD] zero.

    `tokenizer` needs `get_vocab()` and `pad_token_id`. A vocabulary token takes the vector of the same word, or
    failing that of the first word equal to it once lower-cased (cased GloVe files list frequent forms first).
    The coverage is logged. Raises ValueError naming the file and line when a vector has the wrong size or a
    non-numeric value. Lines that are not valid UTF-8 are skipped, counted and reported in a logged warning (with
    the first line numbers), never altered silently.
    """
    vocab = tokenizer.get_vocab()
    if init is not None:
        if tuple(init.shape) != (len(vocab), hidden_size):
            raise ValueError(f"init has shape {tuple(init.shape)}, expected {(len(vocab), hidden_size)}")
        embeddings = np.array(init, dtype=np.float32)
    else:
        embeddings = np.random.default_rng(seed).normal(0.0, 0.02, size=(len(vocab), hidden_size)).astype(np.float32)
    exact = np.zeros(len(vocab), dtype=bool)
    found = np.zeros(len(vocab), dtype=bool)
    bad_utf8 = 0  # lines skipped for invalid UTF-8
    bad_utf8_first: List[int] = []  # the first line numbers of those, for the warning
    with open_binary(glove_txt_path) as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                line = raw.rstrip(b"\r\n").decode("utf-8")
            except UnicodeDecodeError:
                bad_utf8 += 1
                if len(bad_utf8_first) < MAX_REPORTED_LINES:
                    bad_utf8_first.append(line_no)
                continue
            text, _, vector = line.partition(" ")
            index = vocab.get(text)
            is_exact = index is not None
            if index is None:
                index = vocab.get(text.lower())
            if index is None or exact[index] or (found[index] and not is_exact):
                continue
            values = vector.split()
            if len(values) != hidden_size:
                if line_no == 1 and len(values) == 1:  # "count dim" header of the word2vec layout
                    continue
                raise ValueError(f"{glove_txt_path}, line {line_no}: vector of size {len(values)}, hidden_size is {hidden_size}")
            try:
                embeddings[index] = np.asarray(values, dtype=np.float32)
            except ValueError as err:
                raise ValueError(f"{glove_txt_path}, line {line_no}: non-numeric vector ({err})") from None
            found[index] = True
            exact[index] = is_exact
    embeddings[tokenizer.pad_token_id] = 0.0
    if bad_utf8:
        logger.warning(
            "GloVe %s: skipped %d line(s) that are not valid UTF-8 (first lines: %s)",
            glove_txt_path, bad_utf8, ", ".join(str(n) for n in bad_utf8_first),
        )
    logger.info("GloVe %s: %d of %d vocabulary tokens found (%.1f%%)", glove_txt_path, found.sum(), len(vocab), 100.0 * found.mean())
    return embeddings
