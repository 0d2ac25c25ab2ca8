"""A Trainer log history (training losses, two evaluations, the closing summary) for the training-curve tests."""

PNG = b"\x89PNG\r\n\x1a\n"
HISTORY = [
    {"loss": 1.5, "step": 5, "progress_or_epoch": 0.5},
    {"loss": 1.2, "step": 10, "progress_or_epoch": 1.0},
    {"eval_loss": 1.3, "eval_accuracy": 0.5, "eval_macro_f1": 0.3, "eval_adjusted_macro_f1": 0.35,
     "eval_adjusted_accuracy": 0.45, "progress_or_epoch": 1.0, "step": 10},
    {"loss": 0.9, "step": 15, "progress_or_epoch": 1.5},
    {"eval_loss": 1.1, "eval_accuracy": 0.6, "eval_macro_f1": 0.4, "progress_or_epoch": 2.0, "step": 20},
    {"train_loss": 1.2, "step": 20, "progress_or_epoch": 2.0},
]
