"""PNG figures of a run (matplotlib, Agg): the training curve from the Trainer's log history and the per-class
reliability diagram of an evaluation. Each file is written whole or not at all."""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence

from .fileio import atomic_open

__all__ = ["curve_points", "plot_training_curve", "plot_reliability"]

DEV_METRICS = (("macro_f1", "macro-F1"), ("accuracy", "accuracy"))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> None:
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")


def curve_points(log_history: Sequence[Mapping]) -> Dict[str, List]:
    """From `TrainerState.log_history`: train loss per logging step, and per evaluation its epoch, step, dev loss
    and dev metrics (plain and, when logged, logit-adjusted)."""
    points: Dict[str, List] = {"step": [], "loss": [], "eval_step": [], "epoch": [], "eval_loss": []}
    for name, _ in DEV_METRICS:
        points[name], points["adjusted_" + name] = [], []
    for entry in log_history:
        step = entry.get("step", entry.get("global_step"))
        if "loss" in entry and step is not None:
            points["step"].append(step)
            points["loss"].append(float(entry["loss"]))
        if "eval_loss" in entry or any(f"eval_{name}" in entry for name, _ in DEV_METRICS):
            points["eval_step"].append(step)
            points["epoch"].append(entry.get("epoch", entry.get("progress_or_epoch")))
            points["eval_loss"].append(entry.get("eval_loss"))
            for name, _ in DEV_METRICS:
                points[name].append(entry.get(f"eval_{name}"))
                points["adjusted_" + name].append(entry.get(f"eval_adjusted_{name}"))
    return points


def plot_training_curve(log_history: Sequence[Mapping], path: str, title: str = "") -> bool:
    """Left: train loss per logging step and dev loss per evaluation; right: dev macro-F1 and accuracy per epoch
    (dashed: logit-adjusted). False (nothing written) when the history has neither losses nor evaluations."""
    points = curve_points(log_history)
    if not points["loss"] and not points["eval_step"]:
        return False
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    if points["loss"]:
        left.plot(points["step"], points["loss"], color="#4c72b0", lw=1.2, label="train loss (per logging step)")
    dev = [(s, v) for s, v in zip(points["eval_step"], points["eval_loss"]) if v is not None]
    if dev:
        left.plot(*zip(*dev), "o-", color="#dd8452", lw=1.2, label="dev loss (per evaluation)")
    left.set_xlabel("optimizer step")
    left.set_ylabel("cross-entropy")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    colours = {"macro_f1": "#55a868", "accuracy": "#8172b3"}
    for name, label in DEV_METRICS:
        for prefix, style, suffix in (("", "o-", ""), ("adjusted_", "s--", ", logit-adjusted")):
            series = [(e, v) for e, v in zip(points["epoch"], points[prefix + name]) if v is not None and e is not None]
            if series:
                right.plot(*zip(*series), style, color=colours[name], lw=1.2, label=f"dev {label}{suffix}")
    right.set_xlabel("epoch")
    right.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    right.set_ylabel("dev metric")
    right.grid(alpha=0.3)
    if right.lines:
        right.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return True


def plot_reliability(calibration: Mapping, path: str, title: str = "") -> None:
    """One panel per class (from `calibration.calibration_summary`): observed share of the class against the mean
    predicted probability per bin, marker area ~ examples in the bin; the diagonal is perfect calibration."""
    plt = _pyplot()
    classes = list(calibration["per_class"].items())
    fig, axes = plt.subplots(1, len(classes), figsize=(2.6 * len(classes) + 0.6, 3.2), dpi=110, squeeze=False,
                             sharey=True)
    for ax, (name, rel) in zip(axes[0], classes):
        ax.plot([0, 1], [0, 1], color="#999", lw=0.8, ls="--")
        kept = [(c, o, n) for c, o, n in zip(rel["mean_probability"], rel["observed"], rel["count"]) if n]
        if kept:
            conf, obs, counts = zip(*kept)
            total = max(sum(counts), 1)
            ax.plot(conf, obs, "-", color="#4c72b0", lw=1)
            ax.scatter(conf, obs, s=[12 + 400 * n / total for n in counts], color="#4c72b0", alpha=0.7, zorder=3)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_title(f"class {name}: ECE {rel['ece']:.3f}", fontsize=9)
        ax.set_xlabel(f"predicted p({name})", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("observed share", fontsize=8)
    fig.suptitle((title + "  " if title else "") + f"(top-label ECE {calibration['top_label_ece']:.3f})", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
