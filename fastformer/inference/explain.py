"""Token importance for a classifier's prediction, by two kinds of method, and its word-level aggregation.

From the model's own weights: "pooling" (the classifier pooler's token weights) and "rollout" (the pooling weights
carried back through each layer's alpha/beta). From gradients on the word embeddings, for the log-probability of
the predicted (or a given) class: "gradient" (gradient x input) and "integrated_gradients" (from a zero embedding).
Scores are normalised to sum(|score|) = 1 over the real tokens; negative ones speak against the prediction.
Runs on the dygraph model (the graph in an export has no gradients). See docs/explanations.md.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn.functional as F

from ..cli import UserError
from ..encoding import check_max_length, pad_batch, truncation_length
from ..model_folder import load_model_dir
from .explain_methods import DEFAULT_METHOD, METHODS

__all__ = [
    "METHODS",
    "DEFAULT_METHOD",
    "Word",
    "Explainer",
    "model_weights",
    "rollout",
    "gradient_importance",
    "token_importance",
    "split_words",
    "word_scores",
    "bare_word",
    "explainer_for",
    "explain_predictions",
]

IG_STEPS = 16  # midpoint Riemann steps of integrated gradients
_WORD = re.compile(r"\S+")


@dataclass
class Word:
    """A whitespace-separated word of a text: its characters [start, end) and its tokens' positions."""

    text: str
    start: int
    end: int
    tokens: List[int]


def _tensors(input_ids: np.ndarray, attention_mask: np.ndarray) -> Tuple[paddle.Tensor, paddle.Tensor]:
    return paddle.to_tensor(np.asarray(input_ids, "int64")), paddle.to_tensor(np.asarray(attention_mask, "int64"))


def model_weights(model, input_ids: np.ndarray, attention_mask: np.ndarray) -> Dict[str, np.ndarray]:
    """The model's per-token weights (numpy): logits [B, C], pooling [B, L], and for additive attention alpha and
    beta [B, layers, N, L] (softmax attention: attentions [B, layers, N, L, L])."""
    ids, mask = _tensors(input_ids, attention_mask)
    with paddle.no_grad():
        out = model(ids, mask, return_dict=True, output_attentions=True)
    weights = {"logits": out.logits.numpy(), "pooling": out.pooling_weights.numpy()}
    for name, field in (("alpha", "query_weights"), ("beta", "key_weights"), ("attentions", "attentions")):
        if out.get(field) is not None:
            weights[name] = np.stack([w.numpy() for w in out[field]], axis=1)
    return weights


def rollout(weights: Dict[str, np.ndarray]) -> np.ndarray:
    """[B, L] pooling weights carried back through the layers, last to first.

    A layer's token mixing is taken as 1/2 I (the residual) + 1/2 its attention: for additive attention every token
    receives the same global summary, weighted per token by the mean over heads of (alpha + beta) / 2, so the row
    vector w becomes w / 2 + g / 2; for softmax attention w becomes w / 2 + w A / 2 (A averaged over heads)."""
    w = weights["pooling"].astype(np.float64)
    if "alpha" in weights:
        mixing = ((weights["alpha"] + weights["beta"]) / 2).mean(axis=2)  # [B, layers, L]
        for layer in reversed(range(mixing.shape[1])):
            w = w / 2 + mixing[:, layer] / 2
    else:
        attention = weights["attentions"].mean(axis=2)  # [B, layers, L, L]
        for layer in reversed(range(attention.shape[1])):
            w = w / 2 + np.einsum("bi,bij->bj", w, attention[:, layer]) / 2
    return w.astype(np.float32)


@contextmanager
def _trainable(model):
    """Every parameter trainable for the duration (yields them). Paddle 3.3's layer_norm backward gives a wrong
    input gradient when its weight needs none, so gradients are taken for all (`paddle.grad`: none is stored)."""
    params = list(model.parameters())
    frozen = [p for p in params if p.stop_gradient]
    for p in frozen:
        p.stop_gradient = False
    try:
        yield params
    finally:
        for p in frozen:
            p.stop_gradient = True


class _ScaledWordEmbeddings:
    """Forward hook on the word embeddings: replaces them by `scale` x them, as a tensor gradients can reach."""

    def __init__(self, scale: float):
        self.scale = scale
        self.word: Optional[np.ndarray] = None  # the unscaled embeddings
        self.output: Optional[paddle.Tensor] = None

    def __call__(self, layer, inputs, output):
        self.word = output.numpy()
        self.output = (output * self.scale).detach()
        self.output.stop_gradient = False
        return self.output


def gradient_importance(
    model, input_ids: np.ndarray, attention_mask: np.ndarray, target: Optional[np.ndarray] = None, steps: int = 0
) -> Tuple[np.ndarray, np.ndarray]:
    """([B, L] token scores, [B, C] logits): gradient x input of the target class's log-probability on the word
    embeddings (`steps` = 0), or integrated gradients from an all-zero word embedding in `steps` midpoint steps.
    `target`: class per row (default: the predicted one)."""
    ids, mask = _tensors(input_ids, attention_mask)
    embeddings = model.get_input_embeddings()
    with paddle.no_grad():
        logits = model(ids, mask, return_dict=True).logits.numpy()
    target = logits.argmax(-1) if target is None else np.asarray(target)
    pick = paddle.to_tensor(np.eye(logits.shape[-1], dtype="float32")[target])  # [B, C] one-hot
    alphas = [1.0] if steps <= 0 else [(s + 0.5) / steps for s in range(steps)]
    total = np.zeros(ids.shape + [embeddings.weight.shape[-1]], dtype=np.float32)
    for alpha in alphas:
        hook = _ScaledWordEmbeddings(alpha)
        handle = embeddings.register_forward_post_hook(hook)
        try:
            with _trainable(model) as params:
                out = model(ids, mask, return_dict=True).logits
                score = (F.log_softmax(out, axis=-1) * pick).sum()
                grad = paddle.grad([score], [hook.output, *params], allow_unused=True)[0]
        finally:
            handle.remove()
        total += grad.numpy()
    scores = (total / len(alphas) * hook.word).sum(-1)  # (x - 0) . mean gradient, per token
    return scores * np.asarray(attention_mask, dtype=np.float32), logits


def _normalise(scores: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float32) * np.asarray(attention_mask, dtype=np.float32)
    total = np.abs(scores).sum(-1, keepdims=True)
    return np.divide(scores, total, out=np.zeros_like(scores), where=total > 0)


def token_importance(
    model, input_ids: np.ndarray, attention_mask: np.ndarray, method: str = DEFAULT_METHOD,
    ig_steps: int = IG_STEPS, target: Optional[np.ndarray] = None,
) -> Tuple[np.ndarray, np.ndarray, Dict[str, np.ndarray]]:
    """([B, L] scores with sum(|score|) = 1 over real tokens and 0 on padding, [B, C] logits, the model's weights
    (`model_weights`; empty for the gradient methods)) for the class `target` of each row (default: predicted)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method in ("pooling", "rollout"):
        weights = model_weights(model, input_ids, attention_mask)
        scores = weights["pooling"] if method == "pooling" else rollout(weights)
        return _normalise(scores, attention_mask), weights["logits"], weights
    steps = ig_steps if method == "integrated_gradients" else 0
    scores, logits = gradient_importance(model, input_ids, attention_mask, target, steps=steps)
    return _normalise(scores, attention_mask), logits, {}


def split_words(tokenizer, text: str) -> Tuple[List[Word], List[str]]:
    """The whitespace-separated words of `text` and all its tokens; word.tokens index the tokens.

    The tokenizer splits at whitespace first, so a text's tokens are its words' tokens in order."""
    words, tokens = [], []
    for match in _WORD.finditer(text):
        pieces = tokenizer.tokenize(match.group())
        positions = list(range(len(tokens), len(tokens) + len(pieces)))
        words.append(Word(match.group(), match.start(), match.end(), positions))
        tokens.extend(pieces)
    return words, tokens


def bare_word(word: str) -> str:
    """`word` without the punctuation and symbols around it (itself when it is only those)."""
    start, end = 0, len(word)
    while start < end and unicodedata.category(word[start])[0] in "PS":
        start += 1
    while end > start and unicodedata.category(word[end - 1])[0] in "PS":
        end -= 1
    return word[start:end] or word


def word_scores(words: Sequence[Word], token_scores: Sequence[float], read: int) -> List[Optional[float]]:
    """Per word, the sum of its read tokens' scores (the first `read` tokens); None for a word not read."""
    return [float(sum(token_scores[i] for i in w.tokens if i < read)) if w.tokens and w.tokens[0] < read else None
            for w in words]


class Explainer:
    """Explanations of review texts by a dygraph classifier (a model folder: `Explainer.from_model_dir`).

    `explain(texts)` gives per text the predicted class, its probabilities, the read tokens with their scores, the
    words with theirs and the `top_k` words that most support the prediction."""

    def __init__(self, model, tokenizer, max_length: Optional[int] = None, method: str = DEFAULT_METHOD,
                 batch_size: int = 16, top_k: int = 5, ig_steps: int = IG_STEPS, with_weights: bool = False,
                 lock: Optional[threading.Lock] = None):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        model.eval()
        self.model, self.tokenizer, self.method = model, tokenizer, method
        self.max_length = check_max_length(max_length or truncation_length(model.config, tokenizer), model.config)
        self.batch_size, self.top_k, self.ig_steps = int(batch_size), int(top_k), int(ig_steps)
        self.with_weights = with_weights  # also give the model's alpha / beta / pooling weights per token
        self._lock = lock or threading.Lock()  # one pass at a time: the hooks would reach a concurrent forward
        config = model.config
        self.labels = [str(config.id2label[i]) for i in range(config.num_labels)]

    @classmethod
    def from_model_dir(cls, path: str, allow_pickle: bool = False, **kwargs) -> "Explainer":
        model, tokenizer = load_model_dir(path, allow_pickle=allow_pickle)
        return cls(model, tokenizer, **kwargs)

    def scores(self, ids: Sequence[Sequence[int]], targets: Optional[Sequence[int]] = None
               ) -> Tuple[List[np.ndarray], np.ndarray, List[dict]]:
        """Per id list (non-empty): its token scores for its class in `targets` (default: the predicted one), the
        logits [N, C], and its model weights (when asked)."""
        out_scores: List[np.ndarray] = [np.zeros(0)] * len(ids)
        logits = np.zeros((len(ids), len(self.labels)), dtype=np.float32)
        extra: List[dict] = [{} for _ in ids]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            input_ids, mask = pad_batch([ids[i] for i in rows], self.tokenizer.pad_token_id)
            target = None if targets is None else np.asarray([targets[i] for i in rows])
            with self._lock:
                scores, batch_logits, weights = token_importance(self.model, input_ids, mask, self.method,
                                                                 self.ig_steps, target)
                if self.with_weights and not weights:
                    weights = model_weights(self.model, input_ids, mask)
            for row, i in enumerate(rows):
                n = len(ids[i])
                out_scores[i], logits[i] = scores[row, :n], batch_logits[row]
                if self.with_weights:
                    extra[i] = {name: weights[name][row][..., :n] for name in ("pooling", "alpha", "beta")
                                if name in weights}
        return out_scores, logits, extra

    def explain(self, texts: Sequence[str], targets: Optional[Sequence[int]] = None) -> List[Dict[str, object]]:
        """One explanation per text, of its class in `targets` (default: the one this model predicts); a text
        without tokens gets {"error": ...}."""
        split = [split_words(self.tokenizer, text) for text in texts]
        ids = [self.tokenizer.convert_tokens_to_ids(tokens[: self.max_length]) for _, tokens in split]
        keep = [i for i, seq in enumerate(ids) if seq]
        chosen = None if targets is None else [targets[i] for i in keep]
        scores, logits, extra = self.scores([ids[i] for i in keep], chosen) if keep else ([], None, [])
        results: List[Dict[str, object]] = [{"error": "text has no tokens"} for _ in texts]
        for row, i in enumerate(keep):
            words, tokens = split[i]
            read = len(ids[i])
            probs = np.exp(logits[row] - logits[row].max())
            probs /= probs.sum()
            per_word = word_scores(words, scores[row], read)
            ranked = sorted((k for k, s in enumerate(per_word) if s is not None and s > 0), key=lambda k: -per_word[k])
            top: List[str] = []
            for k in ranked:  # the words themselves, without the punctuation around them, each once
                word = bare_word(words[k].text)
                if word.lower() not in {t.lower() for t in top}:
                    top.append(word)
            explained = int(probs.argmax()) if targets is None else int(targets[i])
            result = {
                "method": self.method,
                "label": self.labels[explained],
                "probabilities": {name: float(p) for name, p in zip(self.labels, probs)},
                "tokens": tokens[:read],
                "token_scores": [round(float(s), 5) for s in scores[row]],
                "words": [{"word": w.text, "start": w.start, "end": w.end,
                           "score": None if s is None else round(s, 5)} for w, s in zip(words, per_word)],
                "top_words": top[: self.top_k],
                "truncated_tokens": max(0, len(tokens) - read),
            }
            if extra[row]:
                result["model_weights"] = {name: np.round(w, 5).tolist() for name, w in extra[row].items()}
            results[i] = result
        return results


def explainer_for(predictor, method: str = DEFAULT_METHOD, **kwargs) -> Explainer:
    """An `Explainer` of the dygraph model a `Predictor` runs, sharing its lock (so a forward pass of one never meets
    the other's hooks) and its max_length; a `UserError` for an export (it holds no dygraph model)."""
    model = predictor.dynamic_model
    if model is None:
        raise UserError(f"{predictor.model_dir!r} is an export: explanations take gradients through the trained "
                        "model, which an export does not hold; give the trained model folder (train.py's model/)")
    return Explainer(model, predictor.tokenizer, predictor.max_length, method, lock=predictor.lock, **kwargs)


def explain_predictions(predictor, explainer: Explainer, texts: Sequence[str]) -> List[Dict[str, object]]:
    """`predictor.predict(texts)`, each result with an "explanation" of its predicted class (None for a text that
    could not be predicted)."""
    results = predictor.predict(texts)
    good = [i for i, r in enumerate(results) if r.get("error") is None]
    labels = list(predictor.labels)
    explanations = explainer.explain([texts[i] for i in good], [labels.index(results[i]["label"]) for i in good])
    for result in results:
        result["explanation"] = None
    for i, explanation in zip(good, explanations):
        explanation.pop("probabilities", None)  # the prediction's own are in the result
        results[i]["explanation"] = explanation
    return results
