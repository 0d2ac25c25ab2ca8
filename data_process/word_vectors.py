"""Word vectors learnt from the training split alone: positive PMI of word co-occurrences, reduced by a truncated SVD.

A stand-in for a GloVe-style initialisation of the word embeddings when no pretrained vector file may be used
(Levy, Goldberg & Dagan 2015, "Improving Distributional Similarity with Lessons Learned from Word Embeddings": PPMI
with context-distribution smoothing 0.75 and a symmetric SVD, U * sqrt(S)). It reads only the texts it is given, so
vectors made from `train.jsonl` carry no information from dev, test or outside data. Words are tokenized by the
model's own tokenizer, so every vector is keyed by a vocabulary token.

Output: a GloVe-layout text file (`word v1 v2 ...` a line), which `train.py --word_vectors FILE` (and
`fastformer.embeddings.load_glove_embeddings`) reads like any other vector file.

CLI: python -m fastformer_data.word_vectors --data_dir output/x/data --output output/x/word_vectors.txt --dim 256
"""

from __future__ import annotations

import argparse
import logging
import os
from collections import Counter
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from fastformer.cli import printable

__all__ = ["train_word_vectors", "write_word_vectors", "main"]

logger = logging.getLogger(__name__)


def _cooccurrence(docs: Sequence[np.ndarray], vocab_size: int, window: int):
    """Symmetric co-occurrence counts within `window` tokens, weighted 1/distance (as GloVe), as a CSR matrix."""
    from scipy import sparse

    matrix = sparse.csr_matrix((vocab_size, vocab_size), dtype=np.float64)
    for distance in range(1, window + 1):
        left = [d[:-distance] for d in docs if len(d) > distance]
        if not left:
            break
        right = np.concatenate([d[distance:] for d in docs if len(d) > distance])
        left = np.concatenate(left)
        weights = np.full(len(left), 1.0 / distance)
        pairs = sparse.coo_matrix((weights, (left, right)), shape=(vocab_size, vocab_size)).tocsr()
        matrix = matrix + pairs + pairs.T
    return matrix


def train_word_vectors(
    texts: Iterable[str],
    tokenize: Callable[[str], List[str]],
    dim: int = 256,
    window: int = 5,
    min_count: int = 2,
    max_words: Optional[int] = None,
    alpha: float = 0.75,
    seed: int = 0,
) -> Tuple[List[str], np.ndarray]:
    """(words, float32 [len(words), dim] vectors) from `texts`, with unit-length rows.

    `tokenize` splits a text into tokens (the model tokenizer's `tokenize`); words seen fewer than `min_count`
    times, and those beyond the `max_words` most frequent, get no vector. `window` is the context size each side;
    `alpha` the context-distribution smoothing of the PMI; `seed` fixes the randomised SVD.
    """
    from scipy import sparse
    from sklearn.utils.extmath import randomized_svd

    docs_tokens = [tokenize(text) for text in texts]
    counts = Counter(t for doc in docs_tokens for t in doc)
    words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    if max_words:
        words = words[:max_words]
    if len(words) <= dim:
        raise ValueError(f"only {len(words)} words occur at least {min_count} times: too few for {dim}-d vectors")
    index = {w: i for i, w in enumerate(words)}
    docs = [np.fromiter((index[t] for t in doc if t in index), dtype=np.int64) for doc in docs_tokens]
    cooc = _cooccurrence(docs, len(words), window).tocoo()
    # PPMI with smoothed context distribution: log(p(w, c) / (p(w) p_alpha(c))), negatives clipped to 0
    total = cooc.data.sum()
    row_sum = np.asarray(cooc.sum(axis=1)).ravel()
    col_alpha = np.asarray(cooc.sum(axis=0)).ravel() ** alpha
    pmi = np.log(cooc.data * col_alpha.sum() / (row_sum[cooc.row] * col_alpha[cooc.col]))
    keep = pmi > 0
    ppmi = sparse.csr_matrix((pmi[keep], (cooc.row[keep], cooc.col[keep])), shape=cooc.shape)
    u, s, _ = randomized_svd(ppmi, n_components=dim, n_iter=5, random_state=seed)
    vectors = u * np.sqrt(s)  # symmetric weighting: U * S^0.5
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.maximum(norms, 1e-12)
    logger.info("word vectors: %d words x %d from %d texts (%d tokens), window %d", len(words), dim,
                len(docs), int(sum(len(d) for d in docs)), window)
    return words, vectors.astype(np.float32)


def write_word_vectors(path: str, words: Sequence[str], vectors: np.ndarray) -> None:
    """GloVe-layout text file: `word v1 ... vd` a line (written atomically)."""
    from fastformer.fileio import atomic_open

    with atomic_open(path, "w") as f:
        for word, vector in zip(words, vectors):
            f.write(word + " " + " ".join(f"{v:.6g}" for v in vector) + "\n")


def main(argv: Optional[Sequence[str]] = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--data_dir", required=True, help="prepared dataset folder: only its train.jsonl is read")
    parser.add_argument("--output", required=True, help="vector file to write (GloVe text layout)")
    parser.add_argument("--dim", type=int, default=256, help="vector size = the model's hidden_size (default 256)")
    parser.add_argument("--window", type=int, default=5, help="context words each side (default 5)")
    parser.add_argument("--min_count", type=int, default=2, help="words seen fewer times get no vector (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from fastformer.tokenizer import FastformerTokenizer

    from .prepare import read_split

    texts, _ = read_split(os.path.join(args.data_dir, "train.jsonl"))
    words, vectors = train_word_vectors(texts, FastformerTokenizer().tokenize, args.dim, args.window,
                                        args.min_count, seed=args.seed)
    write_word_vectors(args.output, words, vectors)
    print(f"{len(words)} word vectors of size {args.dim} from {len(texts)} training texts -> {printable(args.output)}")
    return args.output


if __name__ == "__main__":
    main()
