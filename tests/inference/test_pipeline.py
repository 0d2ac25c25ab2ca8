"""`fastformer.pipeline(model_dir)`: the predictions of `Predictor.predict`, for a string or a list of strings."""

from __future__ import annotations

import pytest

import fastformer
from fastformer.inference.pipeline import Pipeline
from fastformer.inference.predictor import Predictor

from tiny_model import saved_tiny_model

CORPUS = ["great product , works well .", "broke after a week , awful .", "it is ok for the price ."]
TEXTS = ["great product", "awful , broke after a week", "   "]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("pipeline") / "model")
    saved_tiny_model(path, CORPUS, seed=5)
    return path


def test_pipeline_predicts_as_the_predictor(model_dir):
    classify = fastformer.pipeline(model_dir, precision="fp32")
    assert isinstance(classify, Pipeline)
    expected = Predictor(model_dir, precision="fp32").predict(TEXTS)
    assert classify(TEXTS) == expected
    assert classify(TEXTS[0]) == expected[0]  # one string: one result
    assert expected[0]["label"] in classify.predictor.labels and expected[2]["error"] == "text is only whitespace"


def test_pipeline_of_a_missing_folder_fails_clearly(tmp_path):
    with pytest.raises((OSError, ValueError)):
        fastformer.pipeline(str(tmp_path / "nowhere"))
