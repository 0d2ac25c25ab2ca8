"""`output_attentions=True`: the per-token weights (alpha, beta per layer and head, the pooling weights), the other
outputs unchanged, and what an exported static graph returns."""

import numpy as np
import paddle
import paddle.nn as nn
import pytest

import reference_numpy
from fastformer import FastformerConfig, FastformerForSequenceClassification, FastformerModel
from reference_numpy import realistic_weights

B, L, PAD = 4, 12, 0
TINY = dict(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32,
            max_position_embeddings=32, num_labels=3)
VARIANTS = {
    "attention": dict(pooler_type="attention"),
    "mean": dict(pooler_type="mean"),
    "first": dict(pooler_type="first"),
    "shared_attention": dict(share_attention_layers=True, use_value_projection=True),
    "softmax_attention": dict(attention_type="softmax"),
}
LENGTHS = [12, 7, 3, 1]


def make_model(cls=FastformerForSequenceClassification, seed=0, **overrides):
    paddle.seed(seed)
    model = cls(FastformerConfig(**dict(TINY, **overrides)))
    realistic_weights(model, seed=seed)  # attention weights far from uniform
    model.eval()
    return model


def batch(lengths=LENGTHS, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.full((len(lengths), L), PAD, dtype="int64")
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(1, TINY["vocab_size"], size=n)
    return paddle.to_tensor(ids), paddle.to_tensor((ids != PAD).astype("int64"))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_weights_sum_to_one_over_real_tokens_and_are_zero_on_padding(variant):
    model = make_model(**VARIANTS[variant])
    ids, mask = batch()
    with paddle.no_grad():
        out = model(ids, mask, output_attentions=True)
    real = mask.numpy().astype(bool)
    per_layer = out.attentions if variant == "softmax_attention" else out.query_weights + out.key_weights
    assert len(per_layer) == (1 if variant == "softmax_attention" else 2) * TINY["num_hidden_layers"]
    for weights in [*per_layer, out.pooling_weights]:
        w = weights.numpy()
        w = w.reshape(B, -1, L)  # [B, heads (x query rows), L]
        np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
        assert np.all(np.where(real[:, None, :], True, w == 0.0))  # exactly 0 on padding
    if variant != "softmax_attention":
        assert out.query_weights[0].shape == [B, TINY["num_attention_heads"], L]
        assert out.attentions is None


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_returning_the_weights_leaves_the_outputs_unchanged(variant):
    model = make_model(**VARIANTS[variant])
    ids, mask = batch()
    labels = paddle.to_tensor(np.array([0, 1, 2, 1], dtype="int64"))
    with paddle.no_grad():
        plain = model(ids, mask, labels=labels, output_hidden_states=True)
        weighed = model(ids, mask, labels=labels, output_hidden_states=True, output_attentions=True)
        plain_tuple = model(ids, mask, return_dict=False)
        weighed_tuple = model(ids, mask, return_dict=False, output_attentions=True)
    assert np.array_equal(plain.logits.numpy(), weighed.logits.numpy())
    assert float(plain.loss) == float(weighed.loss)
    for a, b in zip(plain.hidden_states, weighed.hidden_states):
        assert np.array_equal(a.numpy(), b.numpy())
    assert len(plain_tuple) == 1 and np.array_equal(plain_tuple[0].numpy(), weighed_tuple[0].numpy())
    assert weighed_tuple[-1] is not None and len(weighed_tuple) == (3 if variant == "softmax_attention" else 4)
    assert plain.get("query_weights") is None and plain.get("pooling_weights") is None


def test_base_model_returns_the_weights_too():
    model = make_model(FastformerModel)
    ids, mask = batch()
    with paddle.no_grad():
        plain = model(ids, mask)
        out = model(ids, mask, output_attentions=True)
    assert np.array_equal(plain.pooler_output.numpy(), out.pooler_output.numpy())
    assert len(out.key_weights) == TINY["num_hidden_layers"] and out.pooling_weights.shape == [B, L]


@pytest.mark.parametrize("pooler", ["attention", "mean", "first"])
def test_weights_are_those_of_the_paper_equations(pooler):
    """alpha, beta and the pooling weights against the float64 numpy model written from eq. 3-8."""
    model = make_model(pooler_type=pooler)
    ids, mask = batch()
    with paddle.no_grad():
        out = model(ids, mask, output_attentions=True)
    expected = {}
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    reference_logits = reference_numpy.logits(state, model.config, ids.numpy(), mask.numpy(), weights_out=expected)
    np.testing.assert_allclose(out.logits.numpy(), reference_logits, atol=1e-4)
    for layer in range(TINY["num_hidden_layers"]):
        np.testing.assert_allclose(out.query_weights[layer].numpy(), expected["alpha"][layer], atol=1e-5)
        np.testing.assert_allclose(out.key_weights[layer].numpy(), expected["beta"][layer], atol=1e-5)
    np.testing.assert_allclose(out.pooling_weights.numpy(), expected["pooling"], atol=1e-5)


class _WeightsGraph(nn.Layer):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        out = self.model(input_ids, attention_mask, return_dict=True, output_attentions=True)
        return out.logits, paddle.stack(out.query_weights, 1), paddle.stack(out.key_weights, 1), out.pooling_weights


def test_an_exported_static_graph_can_return_the_weights(tmp_path):
    """Paddle Inference runs a graph that returns the logits and the weights as further outputs."""
    from paddle import inference

    model = make_model()
    spec = [paddle.static.InputSpec(shape=[None, None], dtype="int64", name=n) for n in ("input_ids", "attention_mask")]
    prefix = str(tmp_path / "model")
    paddle.jit.save(paddle.jit.to_static(_WeightsGraph(model), input_spec=spec, full_graph=True), prefix)
    model_file = prefix + ".json" if (tmp_path / "model.json").exists() else prefix + ".pdmodel"
    config = inference.Config(model_file, prefix + ".pdiparams")
    config.disable_gpu()
    config.disable_mkldnn()
    predictor = inference.create_predictor(config)
    ids, mask = batch()
    for name, value in zip(predictor.get_input_names(), (ids, mask)):
        handle = predictor.get_input_handle(name)
        handle.reshape(value.shape)
        handle.copy_from_cpu(value.numpy())
    predictor.run()
    outputs = [predictor.get_output_handle(name).copy_to_cpu() for name in predictor.get_output_names()]
    expected = [t.numpy() for t in _WeightsGraph(model)(ids, mask)]
    assert [o.shape for o in outputs] == [e.shape for e in expected]
    for got, want in zip(outputs, expected):
        np.testing.assert_allclose(got, want, atol=1e-5)
