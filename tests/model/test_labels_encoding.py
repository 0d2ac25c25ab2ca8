"""fastformer.model_folder: padding (pad_batch), the Trainer's DataCollator, and the label maps."""

import numpy as np
import pytest

from fastformer.labels import LABEL_NAMES
from fastformer.encoding import DataCollator, pad_batch
from fastformer.labels import label_maps


# ---------------------------------------------------------------------------------------------------- pad_batch
def test_pad_batch_pads_to_the_longest_with_pad_id_and_mask():
    ids, mask = pad_batch([[5, 6, 7], [8], [9, 10]], pad_id=3)
    assert ids.dtype == mask.dtype == np.int64 and ids.shape == mask.shape == (3, 3)
    assert ids.tolist() == [[5, 6, 7], [8, 3, 3], [9, 10, 3]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]


@pytest.mark.parametrize("longest, multiple_of, expected", [(3, 1, 3), (3, 8, 8), (8, 8, 8), (9, 8, 16), (5, 4, 8)])
def test_pad_batch_rounds_the_length_up_to_multiple_of(longest, multiple_of, expected):
    ids, mask = pad_batch([list(range(1, longest + 1)), [1]], pad_id=0, multiple_of=multiple_of)
    assert ids.shape == mask.shape == (2, expected)
    assert mask.sum(axis=1).tolist() == [longest, 1]  # padding never counts as a token
    assert ids[0, :longest].tolist() == list(range(1, longest + 1)) and (ids[0, longest:] == 0).all()


def test_pad_batch_pad_id_equal_to_a_token_id_is_told_apart_by_the_mask():
    ids, mask = pad_batch([[0, 4], [0]], pad_id=0, multiple_of=4)
    assert ids.tolist() == [[0, 4, 0, 0], [0, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 0, 0], [1, 0, 0, 0]]


def test_pad_batch_empty_sequences():
    ids, mask = pad_batch([[], [7, 7]], pad_id=1)  # an empty sequence: all padding, all masked
    assert ids.tolist() == [[1, 1], [7, 7]] and mask.tolist() == [[0, 0], [1, 1]]
    ids, mask = pad_batch([[]], pad_id=2, multiple_of=4)  # only empty sequences: length 1 rounded up, never 0
    assert ids.tolist() == [[2, 2, 2, 2]] and mask.tolist() == [[0, 0, 0, 0]]
    ids, mask = pad_batch([], pad_id=0)  # no sequences at all: an empty [0, 1] batch
    assert ids.shape == mask.shape == (0, 1) and ids.dtype == mask.dtype == np.int64


# ------------------------------------------------------------------------------------------------- DataCollator
def test_data_collator_pads_and_keeps_labels_as_int64():
    features = [{"input_ids": [4, 5, 6], "labels": 4}, {"input_ids": [7], "labels": np.int32(0)}]
    batch = DataCollator(pad_id=1, multiple_of=8)(features)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert all(v.dtype == np.int64 for v in batch.values())
    assert batch["input_ids"].tolist() == [[4, 5, 6] + [1] * 5, [7] + [1] * 7]
    assert batch["attention_mask"].tolist() == [[1] * 3 + [0] * 5, [1] + [0] * 7]
    assert batch["labels"].tolist() == [4, 0] and batch["labels"].shape == (2,)


def test_data_collator_without_labels_and_defaults():
    collator = DataCollator()
    assert collator.pad_id == 0 and collator.multiple_of == 8
    batch = collator([{"input_ids": [3] * 9}, {"input_ids": [2]}])
    assert set(batch) == {"input_ids", "attention_mask"} and batch["input_ids"].shape == (2, 16)
    assert batch["input_ids"].tolist() == pad_batch([[3] * 9, [2]], 0, 8)[0].tolist()


# --------------------------------------------------------------------------------------------------- label_maps
def test_label_maps_are_star_ratings_minus_one():
    assert list(LABEL_NAMES) == ["1", "2", "3", "4", "5"]
    id2label, label2id = label_maps()
    assert id2label == {0: "1", 1: "2", 2: "3", 3: "4", 4: "5"}
    assert label2id == {"1": 0, "2": 1, "3": 2, "4": 3, "5": 4}
    assert all(label2id[id2label[i]] == i for i in id2label)  # inverse of each other
    assert label_maps(["neg", "pos"]) == ({0: "neg", 1: "pos"}, {"neg": 0, "pos": 1})


def test_build_model_takes_word_vectors_for_the_words_it_has(tmp_path):
    from fastformer.model_folder import build_model
    from fastformer.tokenizer import FastformerTokenizer

    tokenizer = FastformerTokenizer.build_from_corpus(["great sound", "great bad thing"], min_freq=1)
    path = tmp_path / "vectors.txt"
    path.write_text("great 1 2 3 4\nthing 5 6 7 8\nunseen 9 9 9 9\n")
    kwargs = dict(hidden_size=4, num_attention_heads=2, intermediate_size=4, num_hidden_layers=1)
    import paddle

    paddle.seed(0)
    plain = build_model(tokenizer, **kwargs).get_input_embeddings().weight.numpy()
    paddle.seed(0)
    weights = build_model(tokenizer, word_vectors=str(path), **kwargs).get_input_embeddings().weight.numpy()
    vocab = tokenizer.get_vocab()
    assert weights[vocab["great"]].tolist() == [1, 2, 3, 4] and weights[vocab["thing"]].tolist() == [5, 6, 7, 8]
    others = [i for w, i in vocab.items() if w not in ("great", "thing")]
    np.testing.assert_array_equal(weights[others], plain[others])  # the model's own init elsewhere, [PAD] zero
    assert not weights[vocab["[PAD]"]].any()
