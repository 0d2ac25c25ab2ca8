"""How the predictor splits texts into forward passes (`predictor.length_groups`): contiguous runs of the
length-sorted texts, at most batch_size each, of least padded cost; results do not depend on the split."""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest

import fastformer  # noqa: F401
from fastformer.inference.loader import load_predictor
from fastformer.inference.predictor import FORWARD_COST, PAD_MULTIPLE, ROW_COST, bucket_rows, length_groups

from tiny_model import saved_tiny_model

CORPUS = ["great product , works well .", "broke after a week , waste of money .", "the sound is ok ."]


def _cost(lengths, groups, batch_size):
    return sum(FORWARD_COST + bucket_rows(stop - start, batch_size)
               * (-(-max(1, lengths[stop - 1]) // PAD_MULTIPLE) * PAD_MULTIPLE + ROW_COST)
               for start, stop in groups)


def _least_cost(lengths, batch_size):
    """Every split into contiguous runs of at most batch_size, tried (small inputs only)."""

    @functools.lru_cache(maxsize=None)
    def best(stop):
        if stop == 0:
            return 0
        return min(best(start) + _cost(lengths, [(start, stop)], batch_size)
                   for start in range(max(0, stop - batch_size), stop))

    return best(len(lengths))


@pytest.mark.parametrize("batch_size", [1, 4, 6, 64])
def test_groups_cover_the_sorted_texts_in_runs_of_at_most_batch_size_at_least_cost(batch_size):
    rng = random.Random(batch_size)
    for _ in range(40):
        lengths = sorted(rng.choice([0, 1, 3, 15, 17, 30, 60, 200, 512]) for _ in range(rng.randint(1, 14)))
        groups = length_groups(lengths, batch_size)
        assert groups[0][0] == 0 and groups[-1][1] == len(lengths)
        assert all(a[1] == b[0] for a, b in zip(groups, groups[1:]))
        assert all(0 < stop - start <= batch_size for start, stop in groups)
        assert _cost(lengths, groups, batch_size) == _least_cost(tuple(lengths), batch_size)
    assert length_groups([], batch_size) == []


def test_a_few_long_texts_get_passes_of_their_own():
    assert length_groups([5] * 10 + [300], 64) == [(0, 10), (10, 11)]
    assert length_groups([20] * 64, 64) == [(0, 64)]  # one length: one full pass
    assert length_groups([20] * 100, 64) == [(0, 64), (64, 96), (96, 100)]  # 100 rows would be padded to 128


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("groups") / "model")
    saved_tiny_model(model_dir, CORPUS, seed=7)
    return load_predictor(model_dir, backend="dynamic", batch_size=64)


def test_predictor_runs_the_split_and_its_results_are_each_texts_own(predictor, monkeypatch):
    short = ["great product", "the sound is ok", "broke", "waste of money", "works well", "ok", "great", "money"]
    long = " ".join(["great product , works well ."] * 9)  # 54 tokens: padded to 64, the short ones to 16
    texts = short[:5] + [long] + short[5:]
    shapes = []
    run = predictor._runner.run

    def spy(input_ids, attention_mask):
        shapes.append(input_ids.shape)
        return run(input_ids, attention_mask)

    monkeypatch.setattr(predictor._runner, "run", spy)
    probs = predictor.predict_proba(texts)
    assert sorted(shapes) == [(1, 64), (8, 16)]  # not 16 rows of 64 tokens: the long text ran alone
    alone = np.concatenate([predictor.predict_proba([text]) for text in texts])
    np.testing.assert_allclose(probs, alone, atol=1e-5)
    got = predictor.predict(texts)
    assert [g["label"] for g in got] == [predictor.labels[i] for i in alone.argmax(-1)]

