"""Inference: `loader.load_predictor` (decides the precision, runs the bf16 quality gate once) returns a `Predictor`
(`predictor`), which runs an export or a model folder (`runners`, `folders`); `export`, `batching` and `server_limits`
serve export_model.py and serve.py. Never imports `fastformer.training`."""
