"""benchmarks/faithfulness.py: word deletion measured right (an exact oracle ranks first), and end to end."""

import json

import numpy as np
import pytest

from benchmarks import faithfulness
from fastformer.inference import explain
from reference_numpy import realistic_weights
from tiny_model import saved_tiny_model, tiny_model

CORPUS = [
    "great sound works perfectly and the battery lasts all day",
    "stopped working after two days waste of money do not buy",
    "the cable is too short but it charges my phone quickly enough",
    "excellent value would buy again five stars",
    "terrible support never answered returned it",
]


def reviews_of(tokenizer, texts, max_length=64):
    return [faithfulness.Review(tokenizer, text, max_length) for text in texts]


def test_words_deleted_and_counts():
    _, tokenizer = tiny_model(CORPUS, seed=0)
    review = faithfulness.Review(tokenizer, "Don't buy: the cable's short", max_length=5)
    assert review.ids == tokenizer.convert_tokens_to_ids(["do", "n't", "buy", ":", "the"])
    assert review.words == [[0, 1], [2, 3], [4]]  # the words read (the last ones are cut by max_length)
    assert review.without([0, 2]) == review.ids[2:4]
    assert [faithfulness.count_for(p, 100) for p in (1, 3, 5, 10)] == [1, 3, 5, 10]
    assert faithfulness.count_for(1, 2) == 1 and faithfulness.count_for(10, 2) == 1
    assert faithfulness.count_for(10, 31) == 4


def test_an_exact_oracle_beats_random_which_beats_its_reverse():
    """Scoring each word by the probability drop its own deletion causes: deleting the top-1 word drops the
    prediction most, the bottom-1 word least, random words in between (exactly, review by review)."""
    model, tokenizer = tiny_model(CORPUS, seed=1)
    realistic_weights(model, seed=1)
    model.eval()
    reviews = reviews_of(tokenizer, CORPUS + [" ".join(CORPUS[:3])])

    def occlusion(ids_list):
        scores = []
        for review, ids in zip(reviews, ids_list):
            assert ids == review.ids
            base = faithfulness.probabilities(model, tokenizer, [ids], 8)[0]
            without = [review.without([w]) for w in range(len(review.words))]
            cut = faithfulness.probabilities(model, tokenizer, without, 8)
            token_scores = np.zeros(len(ids))
            for w, positions in enumerate(review.words):
                token_scores[positions[0]] = base[base.argmax()] - cut[w, base.argmax()]
            scores.append(token_scores)
        return scores

    def reverse(ids_list):
        return [-s for s in occlusion(ids_list)]

    results = faithfulness.measure(model, tokenizer, reviews, {"oracle": occlusion, "reverse": reverse},
                                   percents=[1], random_draws=5, seed=0)
    oracle, rnd = results["methods"]["oracle"]["by_percent"]["1"], results["random"]["1"]
    assert oracle["top"]["mean_drop"] > rnd["mean_drop"] > oracle["bottom"]["mean_drop"]
    assert results["methods"]["reverse"]["by_percent"]["1"]["top"]["mean_drop"] == oracle["bottom"]["mean_drop"]
    assert results["most_faithful"] == "oracle"
    against = results["best_against"]["reverse"]
    assert against["mean_aopc_difference"] > 0 and against["reviews_ahead"] > against["reviews_behind"]


def test_the_benchmark_runs_end_to_end(tmp_path):
    model_dir, data = tmp_path / "model", tmp_path / "dev.jsonl"
    saved_tiny_model(str(model_dir), CORPUS, seed=2)
    texts = CORPUS * 3 + ["great", "ok fine"]
    data.write_text("".join(json.dumps({"text": t, "label": i % 5}) + "\n" for i, t in enumerate(texts)))
    payload = faithfulness.main(["--model_dir", str(model_dir), "--data", str(data), "--limit", "12",
                                 "--ig_steps", "2", "--random_draws", "2", "--output_dir", str(tmp_path),
                                 "--stem", "f"])
    written = json.loads((tmp_path / "f.json").read_text())
    assert written["results"]["most_faithful"] == payload["results"]["most_faithful"] in explain.METHODS
    assert written["reviews_in_split"] == 12 and written["reviews_measured"] == 11  # "great" has one word
    assert set(written["results"]["methods"]) == set(explain.METHODS)
    for method in written["results"]["methods"].values():
        assert set(method["by_percent"]) == {"1", "3", "5", "10"}
        for figures in method["by_percent"].values():
            assert 0 <= figures["top"]["changed_share"] <= 1 and np.isfinite(figures["top"]["mean_drop"])
    assert "most faithful" in (tmp_path / "f.md").read_text() and written["machine"]["cpu"]


@pytest.mark.parametrize("bad", ["--limit", "--ig_steps"])
def test_bad_numbers_are_refused(bad, capsys):
    with pytest.raises(SystemExit):
        faithfulness.main(["--model_dir", "m", "--data", "d", bad, "-1"])
