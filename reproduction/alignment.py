"""Alignment of the Paddle Fastformer with the official PyTorch code (`reproduction.torch_reference`).

`run_alignment_check` builds the official `Model` with random weights, converts them with `fastformer.convert`,
feeds both models the same padded batches (dropout off, float32) and measures:
  * the max abs difference of the logits before training,
  * for `steps` Adam steps (lr 1e-3, betas 0.9/0.999, eps 1e-8) on the same batches: the loss difference
    and every parameter's gradient difference, relative = max|g_paddle - g_torch| / (max|g_torch| + 1e-12),
    compared after mapping names and transposing Linear weights,
  * the max abs difference of the parameters and logits after training.
Gradients that are zero in exact arithmetic (the biases of the softmax scorers `query_att`, `key_att` and
`att_fc2`: a softmax is unchanged by a constant shift, so their gradient is only rounding noise) have no
meaningful relative error; they are reported apart, by their absolute difference.
After the first step the two models' weights differ by rounding, which Adam amplifies where |g| ~ eps
(g / (|g| + eps) is steep there): with identical weights the gradients agree to a few 1e-6 relative, after a
few steps to about 1e-5 (small config) or 5e-5 (official dims), still inside the 1e-4 tolerance.
Used by `tests/reproduction/test_alignment.py` and `reproduction/check_alignment.py`. Requires PyTorch.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import paddle
import torch

from fastformer.convert import config_from_torch_state_dict, convert_state_dict, is_linear_weight, load_converted, paddle_name
from fastformer.modeling import SHIFT_INVARIANT_BIASES, FastformerForSequenceClassification
from reproduction.torch_reference import Model, TorchFastformerConfig

__all__ = ["DEFAULT_CONFIG", "SHIFT_INVARIANT_BIASES", "TOLERANCES", "make_batch", "run_alignment_check", "failures"]

# Small but real: every code path (heads > 1, 2 layers, padding) in a few seconds on a CPU.
DEFAULT_CONFIG = dict(
    vocab_size=100,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=32,
    num_labels=5,
    hidden_dropout_prob=0.0,
)
# Report key -> the largest value accepted (float32 rounding only).
TOLERANCES = {
    "logits_max_abs_diff": 1e-5,
    "max_loss_diff": 1e-5,
    "worst_grad_rel": 1e-4,
    "shift_invariant_grad_abs": 1e-6,
    "logits_max_abs_diff_after": 1e-4,
}


def make_batch(rng: np.random.Generator, batch_size: int, seq_len: int, vocab_size: int, num_labels: int):
    """(input_ids [B, L] int64 with 0 padding and varied lengths incl. 1 and L, labels [B] int64)."""
    lengths = rng.integers(1, seq_len + 1, size=batch_size)
    lengths[0], lengths[-1] = seq_len, 1
    ids = np.zeros((batch_size, seq_len), dtype=np.int64)
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1, vocab_size, size=length)  # real tokens are never 0 (= padding)
    return ids, rng.integers(0, num_labels, size=batch_size).astype(np.int64)


def _grad_diff(g_paddle: np.ndarray, g_torch: np.ndarray) -> Dict[str, float]:
    abs_diff = float(np.max(np.abs(g_paddle - g_torch))) if g_torch.size else 0.0
    scale = float(np.max(np.abs(g_torch))) if g_torch.size else 0.0
    return {"abs": abs_diff, "scale": scale, "rel": abs_diff / (scale + 1e-12)}


def run_alignment_check(
    config_kwargs: Optional[dict] = None,
    steps: int = 5,
    seed: int = 0,
    batch_size: int = 6,
    seq_len: int = 24,
    lr: float = 1e-3,
) -> dict:
    """Compare the Paddle model with the official PyTorch one on the same weights and batches; see module doc.

    `config_kwargs` override `DEFAULT_CONFIG` (keys of `TorchFastformerConfig`). Returns a JSON-able dict:
    logits_max_abs_diff, loss_diffs (per step), losses_torch / losses_paddle, grad_rel (per step, worst
    parameter), worst_grad_rel / worst_grad_param / worst_grad_step, shift_invariant_grad_abs (worst absolute
    difference of the zero-in-theory gradients), param_max_abs_diff_after (all other parameters),
    shift_invariant_param_max_abs_diff_after and logits_max_abs_diff_after training.
    """
    cfg = dict(DEFAULT_CONFIG, **(config_kwargs or {}))
    if seq_len > cfg["max_position_embeddings"]:
        raise ValueError(f"seq_len {seq_len} exceeds max_position_embeddings {cfg['max_position_embeddings']}")
    torch.manual_seed(seed)
    paddle.seed(seed)
    rng = np.random.default_rng(seed)
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch_model = Model(TorchFastformerConfig(**cfg))
        torch_model.train()  # dropout is 0: train and eval agree, and training needs train mode anyway
        torch_sd = torch_model.state_dict()
        config = config_from_torch_state_dict(
            torch_sd,
            cfg["num_attention_heads"],
            layer_norm_eps=cfg.get("layer_norm_eps", 1e-12),
            hidden_dropout_prob=cfg["hidden_dropout_prob"],
        )
        paddle_model = FastformerForSequenceClassification(config)
        load_converted(paddle_model, convert_state_dict(torch_sd))
        paddle_model.train()

        # torch name -> (paddle parameter, transpose?) for the gradient and parameter comparisons
        paddle_params = dict(paddle_model.named_parameters())
        pairs = {}
        for name, p_t in torch_model.named_parameters():
            pairs[name] = (p_t, paddle_params[paddle_name(name)], is_linear_weight(name))

        def logits_diff(ids: np.ndarray, labels: np.ndarray) -> float:
            with torch.no_grad():
                _, logits_t = torch_model(torch.from_numpy(ids), torch.from_numpy(labels))
            with paddle.no_grad():
                logits_p = paddle_model(
                    paddle.to_tensor(ids), attention_mask=paddle.to_tensor((ids != 0).astype("int64"))
                ).logits
            return float(np.max(np.abs(logits_p.numpy() - logits_t.numpy())))

        eval_ids, eval_labels = make_batch(rng, batch_size, seq_len, cfg["vocab_size"], cfg["num_labels"])
        logits_before = logits_diff(eval_ids, eval_labels)

        opt_t = torch.optim.Adam(torch_model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
        opt_p = paddle.optimizer.Adam(
            learning_rate=lr, beta1=0.9, beta2=0.999, epsilon=1e-8, parameters=paddle_model.parameters()
        )
        losses_t: List[float] = []
        losses_p: List[float] = []
        grad_rel: List[dict] = []
        worst = {"rel": -1.0, "param": None, "step": None}
        shift_abs = 0.0
        per_param_worst: Dict[str, float] = {}
        for step in range(steps):
            ids, labels = make_batch(rng, batch_size, seq_len, cfg["vocab_size"], cfg["num_labels"])
            opt_t.zero_grad()
            loss_t, _ = torch_model(torch.from_numpy(ids), torch.from_numpy(labels))
            loss_t.backward()
            opt_p.clear_grad()
            out = paddle_model(
                paddle.to_tensor(ids),
                attention_mask=paddle.to_tensor((ids != 0).astype("int64")),
                labels=paddle.to_tensor(labels),
            )
            out.loss.backward()
            losses_t.append(float(loss_t.item()))
            losses_p.append(float(out.loss.item()))

            step_worst = {"rel": -1.0, "param": None}
            for name, (p_t, p_p, transpose) in pairs.items():
                g_t = p_t.grad.detach().numpy() if p_t.grad is not None else np.zeros(tuple(p_t.shape), np.float32)
                g_p = p_p.grad.numpy() if p_p.grad is not None else np.zeros(p_p.shape, np.float32)
                if transpose:
                    g_p = g_p.T
                diff = _grad_diff(g_p, g_t)
                if name.endswith(SHIFT_INVARIANT_BIASES):
                    shift_abs = max(shift_abs, diff["abs"])
                    continue
                per_param_worst[name] = max(per_param_worst.get(name, 0.0), diff["rel"])
                if diff["rel"] > step_worst["rel"]:
                    step_worst = {"rel": diff["rel"], "param": name}
            grad_rel.append(step_worst)
            if step_worst["rel"] > worst["rel"]:
                worst = {"rel": step_worst["rel"], "param": step_worst["param"], "step": step}
            opt_t.step()
            opt_p.step()

        # Adam divides by sqrt(v): the zero-in-theory bias gradients (rounding noise, ~1e-9) still move those
        # biases by up to lr per step, differently in the two frameworks; harmless (a softmax ignores a shift).
        param_after, shift_param_after = 0.0, 0.0
        for name, (p_t, p_p, transpose) in pairs.items():
            v_p = p_p.numpy().T if transpose else p_p.numpy()
            d = float(np.max(np.abs(v_p - p_t.detach().numpy())))
            if name.endswith(SHIFT_INVARIANT_BIASES):
                shift_param_after = max(shift_param_after, d)
            else:
                param_after = max(param_after, d)
        logits_after = logits_diff(eval_ids, eval_labels)
    finally:
        torch.set_num_threads(prev_threads)

    loss_diffs = [abs(a - b) for a, b in zip(losses_p, losses_t)]
    return {
        "config": cfg,
        "steps": steps,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "logits_max_abs_diff": logits_before,
        "losses_torch": losses_t,
        "losses_paddle": losses_p,
        "loss_diffs": loss_diffs,
        "max_loss_diff": max(loss_diffs) if loss_diffs else 0.0,
        "grad_rel": grad_rel,
        "worst_grad_rel": worst["rel"],
        "worst_grad_param": worst["param"],
        "worst_grad_step": worst["step"],
        "grad_rel_per_param": per_param_worst,
        "shift_invariant_grad_abs": shift_abs,
        "param_max_abs_diff_after": param_after,
        "shift_invariant_param_max_abs_diff_after": shift_param_after,
        "logits_max_abs_diff_after": logits_after,
    }


def failures(report: dict) -> List[str]:
    """The figures of a `run_alignment_check` report that are over `TOLERANCES` (empty when aligned)."""
    out = [f"{key} = {report[key]:.3g} > {tol:g}" for key, tol in TOLERANCES.items() if not report[key] <= tol]
    if out and not report["worst_grad_rel"] <= TOLERANCES["worst_grad_rel"]:
        out.append(f"worst gradient: {report['worst_grad_param']} at step {report['worst_grad_step']}")
    return out
