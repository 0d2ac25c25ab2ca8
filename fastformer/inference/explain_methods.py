"""The names of the explanation methods (`explain.py` computes them), without paddle: the scripts' flags list them
and their --help stays fast."""

__all__ = ["METHODS", "DEFAULT_METHOD"]

METHODS = ("pooling", "rollout", "gradient", "integrated_gradients")
DEFAULT_METHOD = "integrated_gradients"  # the most faithful in benchmarks/results/faithfulness.md
