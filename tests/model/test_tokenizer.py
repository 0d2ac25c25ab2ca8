"""FastformerTokenizer: vocabulary building, splitting, fast path vs PaddleNLP path, save/load.

The GloVe loader (fastformer.embeddings) is tested in test_data_process.py, with a FastformerTokenizer vocabulary.
"""

import json
import os
import re
import socket

import pytest

from fastformer_data.demo_data import generate_demo_reviews
from fastformer.tokenizer import TOKEN_PATTERN, FastformerTokenizer

CORPUS = ["The sound is great. The bass is great!", "the battery died; not great", "Great SOUND, great price."]


@pytest.fixture(scope="module")
def demo_texts(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("demo") / "reviews.json")
    generate_demo_reviews(path, 400, seed=4)
    with open(path) as f:
        return [json.loads(line)["reviewText"] for line in f]


@pytest.fixture(scope="module")
def tokenizer(demo_texts):
    return FastformerTokenizer.build_from_corpus(demo_texts[:300], min_freq=2)


def test_vocabulary_order_and_special_ids():
    tok = FastformerTokenizer.build_from_corpus(CORPUS, min_freq=1)
    # great x5, the x3, "." x2, is x2, sound x2, then the single tokens alphabetically
    assert tok.ids_to_tokens[:7] == ["[PAD]", "[UNK]", "great", "the", ".", "is", "sound"]
    assert tok.ids_to_tokens[7:] == sorted(tok.ids_to_tokens[7:])
    assert (tok.pad_token, tok.pad_token_id, tok.unk_token, tok.unk_token_id) == ("[PAD]", 0, "[UNK]", 1)
    assert len(tok) == tok.vocab_size == len(tok.get_vocab())
    assert FastformerTokenizer.build_from_corpus(CORPUS, min_freq=2).ids_to_tokens == ["[PAD]", "[UNK]", "great", "the", ".", "is", "sound"]
    assert FastformerTokenizer.build_from_corpus(CORPUS, min_freq=1, max_size=4).ids_to_tokens == ["[PAD]", "[UNK]", "great", "the"]
    assert tok.model_input_names == ["input_ids", "attention_mask"]


def test_tokenize_lowercases_and_splits_like_treebank():
    tok = FastformerTokenizer.build_from_corpus(CORPUS)
    assert tok.tokenize("Don't buy it's CHARGER... can't (really)!") == [
        "do", "n't", "buy", "it", "'s", "charger", ".", ".", ".", "ca", "n't", "(", "really", ")", "!",
    ]
    assert FastformerTokenizer(do_lower_case=False).tokenize("Big USB") == ["Big", "USB"]


def test_split_fast_path_equals_the_regex(demo_texts):
    tok = FastformerTokenizer()
    tricky = [
        "tabs\tand\nnew lines\u00a0nbsp\u2009thin\x1cfile-sep",
        "snake_case 3.5mm e-mail café naïve 日本語 emoji🙂x",
        "'quoted' don't. isn't, o'clock rock'n'roll n't 'n't",
        "[PAD] [UNK] <br /> http://x.co/a?b=c&d",
    ]
    pattern = re.compile(TOKEN_PATTERN)
    for text in tricky + demo_texts:
        assert tok.tokenize(text) == pattern.findall(text.lower())


def test_unknown_words_and_special_strings(tokenizer):
    ids = tokenizer.encode_batch(["great qwertyuiop [PAD]"])["input_ids"][0]
    assert ids[1] == 1 and 0 not in ids and len(ids) == 5


def test_encode_batch_truncates_and_masks(tokenizer, demo_texts):
    out = tokenizer.encode_batch(demo_texts, max_length=16)
    assert all(len(ids) == min(16, len(tokenizer.tokenize(t))) for ids, t in zip(out["input_ids"], demo_texts))
    assert out["attention_mask"] == [[1] * len(ids) for ids in out["input_ids"]]
    full = tokenizer.encode_batch(demo_texts[:5])["input_ids"]
    assert [ids[:16] for ids in full] == out["input_ids"][:5] and max(map(len, full)) > 16


def test_call_matches_encode_batch(tokenizer, demo_texts):
    fast = tokenizer.encode_batch(demo_texts, max_length=64)
    slow = tokenizer(demo_texts, max_length=64, truncation=True)
    assert slow["input_ids"] == fast["input_ids"] and slow["attention_mask"] == fast["attention_mask"]
    padded = tokenizer(demo_texts[:4], max_length=64, truncation=True, padding="max_length", return_attention_mask=True)
    for ids, mask, ref in zip(padded["input_ids"], padded["attention_mask"], fast["input_ids"]):
        assert len(ids) == len(mask) == 64
        assert ids == ref + [0] * (64 - len(ref)) and mask == [1] * len(ref) + [0] * (64 - len(ref))
    short = ["great", "the sound is great"]
    longest = tokenizer(short, padding=True, return_tensors="np")
    assert longest["input_ids"].shape == (2, 4) and longest["attention_mask"].tolist() == [[1, 0, 0, 0], [1, 1, 1, 1]]
    assert "token_type_ids" not in longest


def test_save_and_load_round_trip_offline(tokenizer, demo_texts, tmp_path, monkeypatch):
    tokenizer.save_pretrained(str(tmp_path))
    assert {"vocab.txt", "tokenizer_config.json", "special_tokens_map.json"} <= set(os.listdir(tmp_path))
    with open(tmp_path / "vocab.txt", encoding="utf-8") as f:
        assert f.read().split("\n")[:-1] == tokenizer.ids_to_tokens

    def no_network(*args, **kwargs):
        raise AssertionError("loading a local tokenizer must not use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    loaded = FastformerTokenizer.from_pretrained(str(tmp_path))
    assert loaded.get_vocab() == tokenizer.get_vocab() and loaded.do_lower_case
    assert (loaded.pad_token_id, loaded.unk_token_id) == (0, 1)
    assert loaded.encode_batch(demo_texts, 32) == tokenizer.encode_batch(demo_texts, 32)
    cased = FastformerTokenizer.build_from_corpus(CORPUS, do_lower_case=False)
    cased.save_pretrained(str(tmp_path / "cased"))
    assert FastformerTokenizer.from_pretrained(str(tmp_path / "cased")).tokenize("Great") == ["Great"]


def test_bad_vocab_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("great\n[PAD]\n[UNK]\n")
    with pytest.raises(ValueError, match="must start with"):
        FastformerTokenizer(vocab_file=str(path))
    path.write_text("[PAD]\n[UNK]\ngreat\ngreat\n")
    with pytest.raises(ValueError, match="repeated"):
        FastformerTokenizer(vocab_file=str(path))

