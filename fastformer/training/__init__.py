"""Training a classifier with the PaddleNLP Trainer: `arguments`, `dataset`, `sampler`, `trainer`, `resume`,
`checkpoints` (averaging), `logit_adjustment`, `distributed`; train.py puts them together. Importing it sets the CPU
thread counts of a training process (`fastformer.env.set_training_threads`), before paddle loads."""

from ..env import set_training_threads

set_training_threads()
