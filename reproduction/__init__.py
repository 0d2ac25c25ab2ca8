"""Reproduction checks against the official PyTorch Fastformer: the reference model (`torch_reference`), the
forward/gradient alignment (`alignment`, `check_alignment`) and the training alignment (`train_torch_reference`,
`check_training_alignment`). Not part of the installed package; run from the repository root with `python -m`."""
