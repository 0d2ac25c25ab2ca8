"""PaddleNLP's Auto classes load a Fastformer model folder once `fastformer` is imported (fastformer/auto.py), in
either import order, and `import fastformer` alone does not load paddle."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastformer
import paddle
from fastformer.modeling import FastformerForSequenceClassification, FastformerModel
from fastformer.tokenizer import FastformerTokenizer
from paddlenlp.transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from tiny_model import saved_tiny_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = ["great product , works well .", "broke after a week , awful .", "it is ok for the price ."]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("auto") / "model")
    saved_tiny_model(path, CORPUS, seed=3)
    return path


def _logits(model, tokenizer, text):
    model.eval()
    ids = paddle.to_tensor([tokenizer(text)["input_ids"]])
    return model(ids).logits.numpy()


def test_auto_classes_load_the_folder_and_give_the_same_logits(model_dir):
    assert fastformer.auto.is_registered()
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert type(model) is FastformerForSequenceClassification and type(tokenizer) is FastformerTokenizer
    direct = FastformerForSequenceClassification.from_pretrained(model_dir)
    text = "great product , broke after a week"
    np.testing.assert_array_equal(_logits(model, tokenizer, text), _logits(direct, tokenizer, text))
    backbone = AutoModel.from_pretrained(model_dir)
    assert type(backbone) is FastformerModel
    np.testing.assert_array_equal(backbone.embeddings.word_embeddings.weight.numpy(),
                                  direct.fastformer.embeddings.word_embeddings.weight.numpy())


def test_a_folder_of_another_model_still_resolves_to_its_own_class(model_dir, tmp_path):
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    config["architectures"] = ["NotAKnownModelForSequenceClassification"]
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(AttributeError, match="Unable to parse"):  # PaddleNLP's own answer, unchanged
        AutoModelForSequenceClassification.from_pretrained(str(tmp_path))


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_import_fastformer_does_not_load_paddle_and_registers_when_paddlenlp_loads():
    out = _run("import sys, fastformer\n"
               "print('paddle' in sys.modules, 'paddlenlp' in sys.modules, fastformer.auto.is_registered())\n"
               "import paddlenlp.transformers.auto.tokenizer as t\n"
               "print(fastformer.auto.is_registered(), t.TOKENIZER_MAPPING_NAMES['FastformerTokenizer'])\n")
    assert out.split() == ["False", "False", "False", "True", "fastformer"]


def test_registers_when_paddlenlp_was_imported_first(model_dir):
    out = _run("from paddlenlp.transformers import AutoModelForSequenceClassification as A\n"
               "import fastformer\n"
               f"print(type(A.from_pretrained({model_dir!r})).__name__)\n")
    assert out.split()[-1] == "FastformerForSequenceClassification"
