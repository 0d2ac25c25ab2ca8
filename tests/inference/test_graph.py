"""The exported network (`fastformer.inference.graph`): the folded classifier computes the model's logits (fp32), for
every configuration it accepts, without changing the model; other models export their own forward."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

import fastformer  # noqa: F401
from fastformer import model_folder
from fastformer.configuration import FastformerConfig
from fastformer.encoding import encode_texts, pad_batch
from fastformer.inference.graph import FoldedClassifier, LogitsModel, export_graph
from fastformer.modeling import FastformerForSequenceClassification
from fastformer.tokenizer import FastformerTokenizer

CORPUS = ["great sound and battery", "broke after a week", "works fine for the price", "the cable is too short",
          "five stars would buy again", "customer service never answered"]
TEXTS = ["great", "broke after a week and the cable is too short", "works fine", "five stars great sound " * 6]


def _model(seed=0, num_labels=None, **config):
    tokenizer = FastformerTokenizer.build_from_corpus(CORPUS, min_freq=1)
    paddle.seed(seed)
    settings = dict(hidden_size=16, num_attention_heads=4, intermediate_size=24, num_hidden_layers=2,
                    max_position_embeddings=64)
    settings.update(config)
    if num_labels:  # a classifier of another width than the five star ratings
        names = {i: str(i + 1) for i in range(num_labels)}
        model = FastformerForSequenceClassification(FastformerConfig(
            vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, id2label=names,
            label2id={v: k for k, v in names.items()}, **settings))
    else:
        model = model_folder.build_model(tokenizer, **settings)
    rng = np.random.default_rng(seed)
    for param in model.parameters():  # trained-like: biases and LayerNorm shifts are not zero
        param.set_value(param.numpy() + rng.normal(0, 0.2, param.shape).astype("float32"))
    model.eval()
    return model, tokenizer


def _batch(tokenizer, texts=TEXTS):
    return pad_batch(encode_texts(tokenizer, texts, 40), tokenizer.pad_token_id, 8)  # padding in every row but one


def _logits(layer, input_ids, attention_mask):
    with paddle.no_grad():
        out = layer(paddle.to_tensor(input_ids), paddle.to_tensor(attention_mask))
    return (out[0] if isinstance(out, (tuple, list)) else out).numpy()


CONFIGS = {
    "paper": {},
    "mean_pooler_value_projection": {"pooler_type": "mean", "use_value_projection": True},
    "first_token_relu_shared": {"pooler_type": "first", "hidden_act": "relu", "share_attention_layers": True},
    "three_labels_one_layer": {"num_hidden_layers": 1, "num_labels": 3},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_folded_classifier_gives_the_models_logits_fp32(name):
    model, tokenizer = _model(**CONFIGS[name])
    batch = _batch(tokenizer)
    graph = export_graph(model)
    assert isinstance(graph, FoldedClassifier)
    reference = model(paddle.to_tensor(batch[0]), paddle.to_tensor(batch[1]), return_dict=False)[0].numpy()
    folded = _logits(graph, *batch)
    assert folded.shape == reference.shape == (len(TEXTS), model.config.num_labels)
    np.testing.assert_allclose(folded, reference, rtol=0, atol=2e-5)  # fp32 rounding of regrouped sums
    # each row alone (no padding) gives the same logits as inside the padded batch
    for row, text in enumerate(TEXTS):
        alone = _logits(graph, *pad_batch(encode_texts(tokenizer, [text], 40), tokenizer.pad_token_id))
        np.testing.assert_allclose(alone[0], folded[row], rtol=0, atol=2e-5)


def test_folding_leaves_the_model_unchanged_and_shares_no_tensor():
    model, tokenizer = _model()
    before = {name: p.numpy().copy() for name, p in model.state_dict().items()}
    graph = export_graph(model)
    for param in graph.parameters():
        param.set_value(param.numpy() * 0)  # a graph that drifts cannot move the model
    after = model.state_dict()
    assert all(np.array_equal(before[name], after[name].numpy()) for name in before)


def test_softmax_attention_exports_the_models_own_forward():
    model, tokenizer = _model(attention_type="softmax")
    graph = export_graph(model)
    assert isinstance(graph, LogitsModel)
    batch = _batch(tokenizer)
    reference = model(paddle.to_tensor(batch[0]), paddle.to_tensor(batch[1]), return_dict=False)[0].numpy()
    np.testing.assert_array_equal(_logits(graph, *batch), reference)


def test_a_wrong_fold_is_caught():
    """The comparison above can fail: dropping a bias that is not shift-invariant changes the logits."""
    model, tokenizer = _model()
    graph = export_graph(model)
    layer = graph.layers[0]
    layer.bi.set_value(layer.bi.numpy() + 0.5)
    batch = _batch(tokenizer)
    reference = model(paddle.to_tensor(batch[0]), paddle.to_tensor(batch[1]), return_dict=False)[0].numpy()
    assert np.abs(_logits(graph, *batch) - reference).max() > 1e-3
