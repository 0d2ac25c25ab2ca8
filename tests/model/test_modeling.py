"""FastformerConfig / FastformerModel / FastformerForSequenceClassification: Paddle only, tiny configs."""

import inspect

import numpy as np
import paddle
import pytest

from fastformer import FastformerConfig, FastformerForSequenceClassification, FastformerModel
from reference_numpy import realistic_weights

B, L, PAD = 4, 12, 0
TINY = dict(
    vocab_size=50,
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=32,
    max_position_embeddings=32,
    hidden_dropout_prob=0.1,  # non-zero on purpose: every comparison below runs in eval mode
    num_labels=3,
)
VARIANTS = {
    "attention": dict(pooler_type="attention"),
    "mean": dict(pooler_type="mean"),
    "first": dict(pooler_type="first"),
    "value_projection": dict(use_value_projection=True),
    "shared_attention": dict(share_attention_layers=True),
    "all_options": dict(pooler_type="mean", use_value_projection=True, share_attention_layers=True),
    "softmax_attention": dict(attention_type="softmax"),
}


# Biases of the softmax scorers: a softmax ignores a constant shift, so their gradient is 0 in exact arithmetic and only
# rounding noise in float32 (reproduction.alignment.SHIFT_INVARIANT_BIASES, in Paddle's names).
ZERO_GRADIENT_BIASES = ("query_att.bias", "key_att.bias", "att_fc2.bias")


def make_model(cls=FastformerForSequenceClassification, seed=0, **overrides):
    paddle.seed(seed)
    model = cls(FastformerConfig(**dict(TINY, **overrides)))
    model.eval()
    return model


def batch(seed=0, batch_size=B, length=L, lengths=None):
    """Right-padded ids [B, L] (real tokens never PAD) and their 0/1 mask."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, length + 1, size=batch_size) if lengths is None else np.asarray(lengths)
    ids = np.full((batch_size, length), PAD, dtype="int64")
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(1, TINY["vocab_size"], size=n)
    return ids, (ids != PAD).astype("int64")


def logits_of(model, ids, mask=None):
    with paddle.no_grad():
        out = model(paddle.to_tensor(ids), attention_mask=None if mask is None else paddle.to_tensor(mask))
    return out.logits.numpy()


# ---------------------------------------------------------------- shapes and outputs


def test_base_model_tuple_and_dict_outputs():
    model = make_model(FastformerModel)
    ids, mask = batch()
    with paddle.no_grad():
        seq, pooled = model(paddle.to_tensor(ids), paddle.to_tensor(mask), return_dict=False)
        out = model(paddle.to_tensor(ids), paddle.to_tensor(mask), output_hidden_states=True, return_dict=True)
        tup = model(paddle.to_tensor(ids), paddle.to_tensor(mask), output_hidden_states=True, return_dict=False)
    assert seq.shape == [B, L, 16] and pooled.shape == [B, 16]
    assert out.last_hidden_state.shape == [B, L, 16] and out.pooler_output.shape == [B, 16]
    assert len(out.hidden_states) == TINY["num_hidden_layers"] + 1
    assert all(h.shape == [B, L, 16] for h in out.hidden_states)
    assert len(tup) == 3 and len(tup[2]) == TINY["num_hidden_layers"] + 1
    np.testing.assert_allclose(out.pooler_output.numpy(), pooled.numpy(), atol=1e-6)
    np.testing.assert_allclose(out.hidden_states[-1].numpy(), seq.numpy(), atol=1e-6)


def test_classification_outputs_and_loss():
    model = make_model()
    ids, mask = batch()
    labels = paddle.to_tensor(np.array([0, 1, 2, 1], dtype="int64"))
    with paddle.no_grad():
        out = model(paddle.to_tensor(ids), paddle.to_tensor(mask))
        with_loss = model(paddle.to_tensor(ids), paddle.to_tensor(mask), labels=labels)
        tup = model(paddle.to_tensor(ids), paddle.to_tensor(mask), labels=labels, return_dict=False)
        tup_no_labels = model(paddle.to_tensor(ids), paddle.to_tensor(mask), return_dict=False)
    assert out.logits.shape == [B, 3] and out.loss is None
    assert with_loss.loss is not None and with_loss.loss.size == 1 and np.isfinite(float(with_loss.loss))
    # mean cross-entropy of the logits
    logits = with_loss.logits.numpy()
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -log_probs[np.arange(B), labels.numpy()].mean()
    assert abs(float(with_loss.loss) - expected) < 1e-5
    assert len(tup) == 2 and abs(float(tup[0]) - float(with_loss.loss)) < 1e-6
    assert len(tup_no_labels) == 1 and tup_no_labels[0].shape == [B, 3]


def test_default_mask_is_input_ids_not_pad():
    model = make_model()
    ids, mask = batch(seed=1)
    np.testing.assert_allclose(logits_of(model, ids), logits_of(model, ids, mask), atol=1e-6)


# ---------------------------------------------------------------- masking


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_padding_invariance(variant):
    """Extra [PAD] tokens (masked) at the end change nothing."""
    model = make_model(**VARIANTS[variant])
    ids, mask = batch(seed=2, lengths=[12, 7, 3, 1])
    extra = 9
    ids_padded = np.concatenate([ids, np.full((B, extra), PAD, dtype="int64")], axis=1)
    mask_padded = np.concatenate([mask, np.zeros((B, extra), dtype="int64")], axis=1)
    short = logits_of(model, ids, mask)
    long = logits_of(model, ids_padded, mask_padded)
    assert np.abs(short - long).max() <= 1e-5
    # and each example alone, unpadded, gives the same logits as in the padded batch
    for row, n in enumerate([12, 7, 3, 1]):
        alone = logits_of(model, ids[row : row + 1, :n], mask[row : row + 1, :n])
        assert np.abs(alone - short[row : row + 1]).max() <= 1e-5


@pytest.mark.parametrize("variant", ["attention", "mean", "shared_attention", "softmax_attention"])
def test_masked_tokens_are_ignored(variant):
    """Changing the ids under the mask (not PAD any more) changes nothing."""
    model = make_model(**VARIANTS[variant])
    ids, mask = batch(seed=3, lengths=[12, 5, 8, 2])
    noisy = ids.copy()
    noisy[mask == 0] = np.random.default_rng(0).integers(1, TINY["vocab_size"], size=int((mask == 0).sum()))
    assert np.abs(logits_of(model, ids, mask) - logits_of(model, noisy, mask)).max() <= 1e-5


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_batch_independence(variant):
    model = make_model(**VARIANTS[variant])
    ids, mask = batch(seed=4, lengths=[9, 4, 12, 6])
    other_ids, other_mask = batch(seed=5, lengths=[3, 12, 1, 10])
    mixed_ids, mixed_mask = other_ids.copy(), other_mask.copy()
    mixed_ids[0], mixed_mask[0] = ids[0], mask[0]
    base = logits_of(model, ids, mask)[0]
    mixed = logits_of(model, mixed_ids, mixed_mask)
    assert np.abs(base - mixed[0]).max() <= 1e-5
    assert np.abs(logits_of(model, other_ids, other_mask)[1:] - mixed[1:]).max() <= 1e-5


def test_cpu_fast_paths_match_paddle_layers(monkeypatch):
    """The CPU dygraph shortcuts (block-diagonal pooling, matmul-based Linear/LayerNorm backward) give the same
    logits and gradients as the per-head pooling and Paddle's own layers that exported graphs and GPUs run. Weights
    at a trained model's scale: on the official init every head's attention is nearly uniform, and a wrong head
    split on either path would go unseen."""
    from fastformer import cpu_layers, modeling

    def run():
        model = make_model(share_attention_layers=False, use_value_projection=True)
        realistic_weights(model, seed=1)
        model.train()
        paddle.seed(0)
        ids, mask = batch(seed=7, lengths=[12, 5, 9, 1])
        for layer in model.sublayers():
            if isinstance(layer, paddle.nn.Dropout):
                layer.p = 0.0
        out = model(paddle.to_tensor(ids), attention_mask=paddle.to_tensor(mask), labels=paddle.to_tensor([0, 1, 0, 1]))
        out.loss.backward()
        return out.logits.numpy(), {n: p.grad.numpy() for n, p in model.named_parameters() if p.grad is not None}

    fast_logits, fast_grads = run()
    monkeypatch.setattr(cpu_layers, "dygraph_cpu", lambda x: False)
    ref_logits, ref_grads = run()
    assert np.abs(fast_logits - ref_logits).max() <= 1e-6
    assert fast_grads.keys() == ref_grads.keys() and len(ref_grads) > 10
    for name, g in ref_grads.items():
        if name.endswith(ZERO_GRADIENT_BIASES):  # rounding noise on both paths: an absolute bound, as in alignment.py
            assert np.abs(fast_grads[name] - g).max() <= 1e-6, name
            continue
        scale = max(np.abs(g).max(), 1e-8)
        assert np.abs(fast_grads[name] - g).max() <= 1e-4 * scale + 1e-9, name


def pooling_weights(seed=6, lengths=(12, 6, 1, 3)):
    model = make_model(FastformerModel, pooler_type="attention")
    ids, mask = batch(seed=seed, lengths=list(lengths))
    with paddle.no_grad():
        hidden = model(paddle.to_tensor(ids), paddle.to_tensor(mask)).last_hidden_state
        weights = model.pooler.attention_weights(hidden, paddle.to_tensor(mask)).numpy()
    return weights, mask


def test_masked_positions_get_zero_pooling_weight():
    weights, mask = pooling_weights()
    assert weights.shape == (B, L)
    assert np.all(weights[mask == 0] == 0.0)  # exactly 0, as exp(-1e4) in the official PyTorch code
    assert np.all(weights[mask == 1] > 1e-6)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
    assert weights[2, 0] == pytest.approx(1.0)  # a single real token takes all the weight


# ---------------------------------------------------------------- save / load and sharing


def non_default_config():
    return FastformerConfig(
        vocab_size=37,
        hidden_size=12,
        num_hidden_layers=3,
        num_attention_heads=3,
        intermediate_size=20,
        hidden_act="gelu",
        hidden_dropout_prob=0.15,
        max_position_embeddings=40,
        layer_norm_eps=1e-6,
        initializer_range=0.05,
        pad_token_id=1,
        pooler_type="mean",
        use_value_projection=True,
        share_attention_layers=True,
        classifier_dropout=0.05,
        id2label={0: "bad", 1: "ok", 2: "good", 3: "great"},
        label2id={"bad": 0, "ok": 1, "good": 2, "great": 3},
    )


def config_fields():
    names = [p for p in inspect.signature(FastformerConfig.__init__).parameters if p not in ("self", "kwargs")]
    return names + ["num_labels", "id2label", "label2id", "model_type"]


def test_save_load_round_trip(tmp_path):
    paddle.seed(7)
    config = non_default_config()
    model = FastformerForSequenceClassification(config)
    model.eval()
    ids = np.random.default_rng(0).integers(2, 37, size=(3, 10)).astype("int64")
    ids[1, 6:] = 1  # pad id 1
    before = logits_of(model, ids)
    model.save_pretrained(str(tmp_path))
    loaded = FastformerForSequenceClassification.from_pretrained(str(tmp_path))
    loaded.eval()
    np.testing.assert_array_equal(logits_of(loaded, ids), before)
    for field in config_fields():
        assert getattr(loaded.config, field) == getattr(config, field), field
    assert loaded.config.id2label == {0: "bad", 1: "ok", 2: "good", 3: "great"}
    # the shared attention is still one module after loading
    layers = loaded.fastformer.layers
    assert all(layer.attention is layers[0].attention for layer in layers)
    # the base model loads from the classifier's folder too
    base = FastformerModel.from_pretrained(str(tmp_path))
    base.eval()
    np.testing.assert_array_equal(
        base.embeddings.word_embeddings.weight.numpy(), loaded.fastformer.embeddings.word_embeddings.weight.numpy()
    )


def test_share_attention_layers_shares_parameters():
    def count(model):
        return sum(int(np.prod(p.shape)) for p in model.parameters())

    separate = make_model(num_hidden_layers=3)
    shared = make_model(num_hidden_layers=3, share_attention_layers=True)
    h, n = TINY["hidden_size"], TINY["num_attention_heads"]
    attention_size = 3 * (h * h + h) + 2 * (h * n + n)  # query, key, transform; query_att, key_att
    attention = shared.fastformer.layers[0].attention
    assert count(attention) == attention_size
    assert count(separate) - count(shared) == 2 * attention_size
    assert all(layer.attention is attention for layer in shared.fastformer.layers)
    assert len({id(p) for p in shared.parameters()}) == len(shared.parameters())
    # the shared module collects the gradient of every layer: it equals the sum of the per-layer gradients of
    # the same weights used separately (separate model loaded with the shared weights in every layer)
    ids, mask = batch(seed=8)
    labels = paddle.to_tensor(np.array([0, 1, 2, 0]))
    separate.set_state_dict(shared.state_dict())  # the shared state dict names the module under every layer
    for model in (shared, separate):
        model(paddle.to_tensor(ids), paddle.to_tensor(mask), labels=labels).loss.backward()
    total = sum(layer.attention.key.weight.grad.numpy() for layer in separate.fastformer.layers)
    np.testing.assert_allclose(attention.key.weight.grad.numpy(), total, rtol=1e-4, atol=1e-9)
    assert np.abs(total).max() > 0
    # one set of attention parameters: a change through layer 0 is seen by layer 2
    attention.query.weight.set_value(paddle.zeros_like(attention.query.weight))
    assert float(shared.fastformer.layers[2].attention.query.weight.abs().sum()) == 0.0


def test_share_attention_survives_save_load(tmp_path):
    model = make_model(share_attention_layers=True, num_hidden_layers=3)
    ids, mask = batch(seed=9)
    before = logits_of(model, ids, mask)
    model.save_pretrained(str(tmp_path))
    loaded = FastformerForSequenceClassification.from_pretrained(str(tmp_path))
    loaded.eval()
    assert loaded.config.share_attention_layers is True
    layers = loaded.fastformer.layers
    assert all(layer.attention is layers[0].attention for layer in layers)
    assert len(loaded.parameters()) == len(model.parameters())
    np.testing.assert_array_equal(logits_of(loaded, ids, mask), before)


# ---------------------------------------------------------------- training and validation


def test_overfits_one_batch():
    model = make_model(hidden_dropout_prob=0.0, num_labels=3)
    ids, mask = batch(seed=10, batch_size=8, lengths=[12, 3, 7, 9, 1, 5, 11, 6])
    labels = paddle.to_tensor(np.array([0, 1, 2, 0, 1, 2, 2, 1], dtype="int64"))
    opt = paddle.optimizer.Adam(learning_rate=5e-3, parameters=model.parameters())
    model.train()
    losses = []
    for _ in range(30):
        loss = model(paddle.to_tensor(ids), paddle.to_tensor(mask), labels=labels).loss
        loss.backward()
        opt.step()
        opt.clear_grad()
        losses.append(float(loss))
    assert losses[-1] < 0.3 * losses[0], losses


def test_config_validation():
    with pytest.raises(ValueError, match="multiple of num_attention_heads"):
        FastformerConfig(hidden_size=30, num_attention_heads=4)
    with pytest.raises(ValueError, match="pooler_type"):
        FastformerConfig(pooler_type="max")
    config = FastformerConfig()
    assert (config.hidden_size, config.num_attention_heads, config.num_labels, config.pad_token_id) == (256, 16, 5, 0)
    assert config.dropout == config.hidden_dropout_prob  # attribute_map alias


def test_softmax_attention_is_standard_multi_head_attention():
    """attention_type="softmax": softmax(q k^T / sqrt(d) + mask) v per head (numpy reference), padding ignored."""
    from fastformer.modeling import SoftmaxSelfAttention, additive_mask

    paddle.seed(3)
    config = FastformerConfig(**dict(TINY, attention_type="softmax"))
    layer = SoftmaxSelfAttention(config)
    for p in layer.parameters():  # weights at a realistic scale, so that attention is far from uniform
        p.set_value(np.random.default_rng(p.size).normal(0, 0.5, p.shape).astype("float32"))
    x = np.random.default_rng(1).normal(size=(2, 5, 16)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with paddle.no_grad():
        out = layer(paddle.to_tensor(x), additive_mask(paddle.to_tensor(mask), "float32")).numpy()
    w = {name: p.numpy() for name, p in layer.named_parameters()}
    n, d = 4, 4
    heads = lambda a: a.reshape(2, 5, n, d).transpose(0, 2, 1, 3)  # noqa: E731
    q, k, v = (heads(x @ w[f"{m}.weight"] + w[f"{m}.bias"]) for m in ("query", "key", "value"))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + np.where(mask[:, None, None, :] == 1, 0.0, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    expected = (weights @ v).transpose(0, 2, 1, 3).reshape(2, 5, 16)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    assert FastformerForSequenceClassification(config).config.attention_type == "softmax"
    with pytest.raises(ValueError, match="attention_type"):
        FastformerConfig(**dict(TINY, attention_type="linear"))
