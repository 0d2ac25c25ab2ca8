"""fastformer.inference.explain: token importance from the model's weights and from gradients, and the words they add up to."""

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from fastformer.encoding import encode_texts, pad_batch
from fastformer.inference import explain
from reference_numpy import realistic_weights
from tiny_model import tiny_model

CORPUS = [
    "Great sound, works perfectly and the battery lasts all day!",
    "Stopped working after two days: waste of money. Don't buy it.",
    "The cable's too short, but it charges my phone quickly enough.",
]
TEXTS = [
    "Great   sound!! Don't buy the cable, it's too short...",
    "works perfectly",
    "Stopped working after two days, waste of money, the battery never lasts and the cable is too short",
]


@pytest.fixture(scope="module")
def model_and_tokenizer():
    model, tokenizer = tiny_model(CORPUS, seed=3)
    realistic_weights(model, seed=3)  # weights and gradients far from uniform
    model.eval()
    return model, tokenizer


def encode(tokenizer, texts, max_length=64):
    return pad_batch(encode_texts(tokenizer, texts, max_length), tokenizer.pad_token_id)


@pytest.mark.parametrize("method", explain.METHODS)
def test_scores_are_normalised_and_zero_on_padding(model_and_tokenizer, method):
    model, tokenizer = model_and_tokenizer
    ids, mask = encode(tokenizer, TEXTS)
    scores, logits, _ = explain.token_importance(model, ids, mask, method)
    assert scores.shape == ids.shape and logits.shape == (len(TEXTS), model.config.num_labels)
    np.testing.assert_allclose(np.abs(scores).sum(-1), 1.0, atol=1e-5)
    assert np.all(scores[mask == 0] == 0.0)
    if method in ("pooling", "rollout"):
        assert np.all(scores[mask == 1] > 0)


@pytest.mark.parametrize("method", explain.METHODS)
def test_explanations_are_batch_independent(model_and_tokenizer, method):
    """A text's explanation alone equals the one it gets in a padded batch with other texts."""
    model, tokenizer = model_and_tokenizer
    explainer = explain.Explainer(model, tokenizer, method=method)
    together = explainer.explain(TEXTS)
    for text, in_batch in zip(TEXTS, together):
        alone = explainer.explain([text])[0]
        assert alone["label"] == in_batch["label"] and alone["top_words"] == in_batch["top_words"]
        np.testing.assert_allclose(alone["token_scores"], in_batch["token_scores"], atol=2e-5)


def test_pooling_method_gives_the_pooling_weights(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    ids, mask = encode(tokenizer, TEXTS)
    scores, _, weights = explain.token_importance(model, ids, mask, "pooling")
    with paddle.no_grad():
        pooling = model(paddle.to_tensor(ids), paddle.to_tensor(mask), output_attentions=True).pooling_weights
    np.testing.assert_allclose(scores, pooling.numpy(), atol=1e-6)
    np.testing.assert_allclose(weights["pooling"], pooling.numpy(), atol=0)


def test_rollout_of_known_weights():
    # one review of 3 tokens, 2 layers, 1 head: w <- w / 2 + (alpha + beta) / 4, from the last layer down
    pooling = np.array([[0.2, 0.3, 0.5]])
    alpha = np.array([[[[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]]])  # [B, layers, N, L]
    beta = np.array([[[[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]]])
    w = pooling / 2 + np.array([[0.0, 1.0, 0.0]]) / 2  # last layer
    w = w / 2 + np.array([[0.5, 0.0, 0.5]]) / 2  # first layer
    got = explain.rollout({"pooling": pooling, "alpha": alpha, "beta": beta})
    np.testing.assert_allclose(got, w, atol=1e-7)
    np.testing.assert_allclose(got.sum(), 1.0, atol=1e-7)
    # softmax attention: w <- w / 2 + w A / 2
    attention = np.array([[[[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]]]])  # [B, 1, 1, L, L]
    got = explain.rollout({"pooling": pooling, "attentions": attention})
    np.testing.assert_allclose(got, pooling / 2 + np.array([[0.5, 0.2, 0.3]]) / 2, atol=1e-7)


def _log_probability(model, ids, mask, word_scale, target):
    """log p(target) with the word embeddings multiplied by `word_scale`."""
    handle = model.get_input_embeddings().register_forward_post_hook(lambda layer, inputs, out: out * word_scale)
    try:
        with paddle.no_grad():
            logits = model(paddle.to_tensor(ids), paddle.to_tensor(mask)).logits
    finally:
        handle.remove()
    return F.log_softmax(logits, axis=-1).numpy()[np.arange(len(ids)), target]


def test_integrated_gradients_add_up_to_the_change_from_the_baseline(model_and_tokenizer):
    """Completeness: the token scores sum to log p(x) - log p(baseline: all-zero word embeddings)."""
    model, tokenizer = model_and_tokenizer
    ids, mask = encode(tokenizer, TEXTS)
    scores, logits = explain.gradient_importance(model, ids, mask, steps=64)
    target = logits.argmax(-1)
    change = _log_probability(model, ids, mask, 1.0, target) - _log_probability(model, ids, mask, 0.0, target)
    assert np.abs(change).min() > 1e-3  # a real change to account for
    np.testing.assert_allclose(scores.sum(-1), change, rtol=0.02, atol=1e-4)


def test_gradient_times_input_is_the_first_order_change(model_and_tokenizer):
    """Scaling every word embedding by (1 + eps) changes log p by eps x the sum of gradient x input."""
    model, tokenizer = model_and_tokenizer
    ids, mask = encode(tokenizer, TEXTS)
    scores, logits = explain.gradient_importance(model, ids, mask, steps=0)
    target, eps = logits.argmax(-1), 1e-3
    change = (_log_probability(model, ids, mask, 1 + eps, target)
              - _log_probability(model, ids, mask, 1 - eps, target)) / (2 * eps)
    np.testing.assert_allclose(scores.sum(-1), change, rtol=0.02, atol=1e-3)


def test_explaining_leaves_the_parameters_as_they_were(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    explainer = explain.Explainer(model, tokenizer, method="gradient")
    trainable = explainer.explain(TEXTS)
    assert all(not p.stop_gradient for p in model.parameters()) and all(p.grad is None for p in model.parameters())
    for p in model.parameters():
        p.stop_gradient = True
    try:  # frozen parameters (Paddle's layer_norm backward is wrong for a frozen weight): the same explanation
        frozen = explainer.explain(TEXTS)
        assert all(p.stop_gradient for p in model.parameters())
    finally:
        for p in model.parameters():
            p.stop_gradient = False
    for a, b in zip(trainable, frozen):
        np.testing.assert_allclose(a["token_scores"], b["token_scores"], atol=1e-6)


def test_top_words_are_shown_bare_and_once(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    explainer = explain.Explainer(model, tokenizer, method="pooling", top_k=10)
    (result,) = explainer.explain(["«Great!» great... (great) !!! works"])
    assert sorted(w.lower() for w in result["top_words"]) == ["!!!", "great", "works"]


def test_words_and_their_tokens(model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    text = "  Don't   buy:\tthe cable's  TOO short!! naïve café  "
    words, tokens = explain.split_words(tokenizer, text)
    assert tokens == tokenizer.tokenize(text)
    assert [text[w.start:w.end] for w in words] == text.split()
    assert [[tokens[i] for i in w.tokens] for w in words][:3] == [["do", "n't"], ["buy", ":"], ["the"]]
    scores = np.arange(len(tokens), dtype=float)
    per_word = explain.word_scores(words, scores, read=4)  # the first 4 tokens read: do n't buy :
    assert per_word[:2] == [0 + 1, 2 + 3] and all(s is None for s in per_word[2:])


def test_explanation_of_a_text(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    explainer = explain.Explainer(model, tokenizer, max_length=8, method="gradient", top_k=3, with_weights=True)
    text = TEXTS[2]
    result, empty = explainer.explain([text, " \t "])
    assert empty == {"error": "text has no tokens"}
    assert result["tokens"] == tokenizer.tokenize(text)[:8] and len(result["token_scores"]) == 8
    assert result["truncated_tokens"] == len(tokenizer.tokenize(text)) - 8
    assert result["label"] in explainer.labels and sum(result["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    read = [w for w in result["words"] if w["score"] is not None]
    assert [w["word"] for w in read] == text.split()[:len(read)]
    positive = sorted((w for w in read if w["score"] > 0), key=lambda w: -w["score"])
    expected = []
    for w in positive:  # without surrounding punctuation, each word once
        bare = w["word"].strip(",.:!")
        if bare.lower() not in [e.lower() for e in expected]:
            expected.append(bare)
    assert result["top_words"] == expected[:3]
    weights = result["model_weights"]
    assert np.array(weights["alpha"]).shape == (1, model.config.num_attention_heads, 8)  # [layers, heads, tokens]
    assert np.array(weights["pooling"]).shape == (8,)
    # the explained class is the model's prediction
    ids, mask = encode(tokenizer, [text], 8)
    with paddle.no_grad():
        logits = model(paddle.to_tensor(ids), paddle.to_tensor(mask)).logits.numpy()[0]
    assert result["label"] == explainer.labels[int(logits.argmax())]
