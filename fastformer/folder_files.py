"""The file names of a model folder (`model_folder` writes and reads them); no paddle, so that the scripts' flags
and --help can name them without loading it."""

__all__ = ["WEIGHTS_FILE", "PICKLE_WEIGHTS_FILE", "MODEL_FILES", "ALLOW_PICKLE_HELP", "TOKENIZER_CONFIG_FILE"]

WEIGHTS_FILE = "model.safetensors"  # what save_model_dir writes: tensors and a JSON header, nothing to unpickle
PICKLE_WEIGHTS_FILE = "model_state.pdparams"  # older folders (and checkpoints): a pickle, read only with allow_pickle
MODEL_FILES = ("config.json", WEIGHTS_FILE)
ALLOW_PICKLE_HELP = (
    f"also load a model folder whose weights are the pickle-format {PICKLE_WEIGHTS_FILE} (older folders): unpickling "
    "can run arbitrary code, so only for a folder from a source you trust. Folders written now hold model.safetensors"
)
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"  # do_lower_case and model_max_length: without it a cased
# tokenizer would reload lower-casing and the truncation length would be lost
