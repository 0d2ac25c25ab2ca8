"""SYNTHETIC review-like data for demos and tests. This is NOT the Amazon data and says nothing about it.

`generate_demo_reviews` writes fake electronics reviews in the raw layout of an Amazon release so that the real
reading code is exercised: "2014" (JSON lines), "2014-literal" (Python-literal lines, as in some 2014 copies),
"2018" (a few records without `reviewText`, as in the real files) or "2023" (`text`/`title`/`rating`, with
`<br />` line breaks). A path ending in `.gz` is gzip-compressed (byte-identical for the same arguments).

Every record is marked: `reviewerID`/`user_id` "SYNTHETIC-...", `asin` "DEMO...", reviewer name "Synthetic ...".

The wording depends on the rating (graded sentiment words shared between neighbouring ratings, negations such as
"not good", mixed reviews, neutral filler), with about 12% of the reviews written for a neighbouring rating
(label noise), a skewed rating distribution like Amazon's (5: 60%, 4: 20%, 3: 8%, 2: 5%, 1: 7%) and 10 to ~300
words, so that the task is learnable but far from trivial.

CLI: python -m fastformer_data.demo_data --output data/demo/reviews_Electronics_5.json.gz --num_reviews 50000 --seed 1
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import re
import time
from typing import Dict, List, Optional, Sequence, Tuple

from fastformer.cli import UserError, printable
from fastformer.fileio import atomic_open

__all__ = ["FORMATS", "RATING_WEIGHTS", "LABEL_NOISE", "generate_demo_reviews", "main"]

FORMATS = ("2014", "2014-literal", "2018", "2023")
RATING_WEIGHTS = {1: 0.07, 2: 0.05, 3: 0.08, 4: 0.20, 5: 0.60}
LABEL_NOISE = 0.12
MISSING_TEXT_2018 = 0.01

PRODUCTS = [
    "headphones", "charger", "cable", "camera", "keyboard", "mouse", "speaker", "monitor", "router", "battery",
    "case", "adapter", "tablet", "memory card", "hard drive", "remote", "earbuds", "microphone", "power bank",
    "tv mount", "usb hub", "webcam", "flash drive", "screen protector", "stylus", "dash cam", "soundbar", "modem",
]
ASPECTS = [
    "sound quality", "battery life", "build quality", "price", "setup", "screen", "connection", "instruction manual",
    "customer service", "fit", "cable length", "range", "picture quality", "charging speed", "software", "design",
    "volume", "bass", "grip", "packaging",
]
BRANDS = ["zentrix", "voltaro", "kinetiq", "aurabyte", "lumiq", "nexora", "qubex", "sonara", "trivolt", "maxell-x"]
# Sentiment words on the 1..5 scale; neighbouring ratings share some of them.
ADJECTIVES = {
    1: ["terrible", "awful", "useless", "horrible", "garbage", "defective", "bad", "junk"],
    2: ["poor", "disappointing", "flimsy", "cheap", "weak", "bad", "mediocre", "unreliable"],
    3: ["okay", "average", "decent", "fine", "mediocre", "acceptable", "so-so", "good enough"],
    4: ["good", "solid", "nice", "reliable", "decent", "pretty good", "sturdy", "great"],
    5: ["excellent", "amazing", "perfect", "fantastic", "awesome", "great", "outstanding", "superb"],
}
TEMPLATES = {
    1: [
        "the {aspect} is {adj}", "this {product} stopped working after {n} {period}", "do not buy this {product}",
        "it is not {pos} at all", "I returned it and asked for a refund", "complete waste of money",
        "the {product} arrived broken and support never answered", "{adj} product, it died in {n} {period}",
        "I would give zero stars if I could", "the {aspect} is not {pos} and the {aspect2} is {adj}",
    ],
    2: [
        "the {aspect} is {adj}", "not worth the price", "it works but the {aspect} is {adj}",
        "I expected more from this {product}", "had to return it after {n} {period}", "it is not {pos}",
        "the {aspect} could be better", "it feels {adj} and the {aspect} is not great",
        "the {aspect} is {ok} but the {aspect2} is {adj}",
    ],
    3: [
        "the {aspect} is {adj}", "it does the job but nothing special", "not bad but not great either",
        "the {aspect} is {pos} but the {aspect2} is {neg}", "you get what you pay for", "it is {adj} for the price",
        "some things are {pos} and some are {neg}", "I have mixed feelings about this {product}",
        "the {aspect} is not {neg} but not {pos} either",
    ],
    4: [
        "the {aspect} is {adj}", "works well, only minor issues with the {aspect}", "not perfect but {adj} for the price",
        "I would recommend it", "the {aspect} is {adj} and the {aspect2} is {ok}", "it is not {neg} at all",
        "happy with this {product} so far", "the {aspect} could be a bit better but overall it is {adj}",
    ],
    5: [
        "the {aspect} is {adj}", "I love this {product}", "highly recommend it to anyone", "not disappointed at all",
        "best {product} I have owned", "the {aspect} is {adj} and the {aspect2} is {adj}", "no complaints",
        "worth every penny", "it is not {neg} in any way, just {adj}", "I bought a second one for my {person}",
    ],
}
FILLER = [
    "I bought this for my {person}", "it arrived {when}", "I have been using it for {n} {period}",
    "the package included a {accessory}", "I use it mostly for {use}", "the color is {color}",
    "it is compatible with my {device}", "I ordered the {color} one", "the {brand} logo is on the side",
    "it replaced my old {product}", "I compared it with the {brand} model before buying",
    "it weighs about {n} ounces", "my {person} uses it every day", "I read the reviews before ordering",
]
SLOTS = {
    "person": ["son", "daughter", "wife", "husband", "dad", "mom", "office", "brother", "friend"],
    "when": ["on time", "a day early", "two days late", "in a plain box", "on a tuesday", "quickly"],
    "period": ["days", "weeks", "months"],
    "accessory": ["usb cable", "carrying pouch", "wall plug", "manual", "spare tip", "mounting screw"],
    "use": ["work", "travel", "gaming", "the gym", "video calls", "music", "the car", "school"],
    "color": ["black", "white", "silver", "blue", "red", "gray"],
    "device": ["laptop", "phone", "tablet", "desktop", "tv", "car stereo"],
}
TITLES = {
    1: ["Junk", "Do not buy", "Broke quickly", "Waste of money", "Terrible"],
    2: ["Disappointed", "Not great", "Meh", "Could be better", "Poor quality"],
    3: ["It's ok", "Average", "Does the job", "Mixed feelings", "Decent"],
    4: ["Good value", "Works well", "Pretty good", "Solid", "Nice"],
    5: ["Love it", "Excellent", "Perfect", "Great product", "Awesome"],
}


def _compile(template: str) -> Tuple[str, ...]:
    """'the {aspect} is {adj}' -> ('the ', 'aspect', ' is ', 'adj', ''): slot names at the odd positions."""
    return tuple(re.split(r"\{(\w+)\}", template))


POOLS: Dict[str, List[str]] = {
    **SLOTS,
    "pos": ADJECTIVES[4] + ADJECTIVES[5],
    "neg": ADJECTIVES[1] + ADJECTIVES[2],
    "ok": ADJECTIVES[3],
    "aspect": ASPECTS,
    "aspect2": ASPECTS,
    "brand": BRANDS,
    "n": [str(n) for n in range(2, 13)],
}
_TEMPLATES = {level: [_compile(t) for t in templates] for level, templates in TEMPLATES.items()}
_FILLER = [_compile(t) for t in FILLER]


class _Writer:
    """Renders one synthetic review at a time from a seeded generator."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.random = self.rng.random

    def pick(self, seq: Sequence):
        return seq[int(self.random() * len(seq))]

    def _sentence(self, parts: Tuple[str, ...], level: int, product: str) -> str:
        out = list(parts)
        for i in range(1, len(parts), 2):
            name = parts[i]
            out[i] = product if name == "product" else self.pick(ADJECTIVES[level] if name == "adj" else POOLS[name])
        text = "".join(out)
        end = "!" if level in (1, 5) and self.random() < 0.3 else "."
        return text[0].upper() + text[1:] + end

    def text_level(self, rating: int) -> int:
        """The rating the text is written for: the label, or with probability LABEL_NOISE a neighbouring one."""
        if self.random() >= LABEL_NOISE:
            return rating
        if self.random() < 0.75:
            step = self.pick((-1, 1))
            return rating + step if rating + step in RATING_WEIGHTS else rating - step
        return self.pick([r for r in RATING_WEIGHTS if r != rating])

    def review(self, rating: int) -> Dict[str, str]:
        """Text and title of one review with the given star rating."""
        rng, random_ = self.rng, self.random
        product = self.pick(PRODUCTS)
        level = self.text_level(rating)
        center = level + rng.gauss(0, 0.6)  # how this reviewer writes: adjacent ratings overlap
        target = int(min(300, max(10, rng.lognormvariate(math.log(55), 0.75))))
        sentences: List[str] = []
        words = 0
        while words < target:
            if random_() < 0.4:
                sentence = self._sentence(self.pick(_FILLER), level, product)
            else:
                drift = rng.gauss(0, 0.9) + (self.pick((-2, 2)) if random_() < 0.1 else 0)
                sent_level = min(5, max(1, round(center + drift)))
                sentence = self._sentence(self.pick(_TEMPLATES[sent_level]), sent_level, product)
            sentences.append(sentence)
            words += sentence.count(" ") + 1
        title_level = min(5, max(1, round(center + rng.gauss(0, 0.7))))
        separator = "  " if random_() < 0.05 else " "  # some raw texts have irregular spacing
        return {"text": separator.join(sentences), "title": self.pick(TITLES[title_level])}


def _record(fmt: str, index: int, rating: int, review: Dict[str, str], rng: random.Random) -> dict:
    """A record in the field layout of the release `fmt`."""
    unix_time = 1_300_000_000 + rng.randrange(120_000_000)
    asin = f"DEMO{rng.randrange(5000):06d}"
    reviewer = f"SYNTHETIC-{index:08d}"
    if fmt == "2023":
        return {
            "rating": float(rating),
            "title": review["title"],
            "text": review["text"],
            "images": [],
            "asin": asin,
            "parent_asin": asin,
            "user_id": reviewer,
            "timestamp": unix_time * 1000,
            "helpful_vote": rng.randrange(4),
            "verified_purchase": True,
        }
    record = {
        "reviewerID": reviewer,
        "asin": asin,
        "reviewerName": f"Synthetic reviewer {index}",
        "reviewText": review["text"],
        "overall": float(rating),
        "summary": review["title"],
        "unixReviewTime": unix_time,
        "reviewTime": time.strftime("%m %d, %Y", time.gmtime(unix_time)),
    }
    if fmt == "2018":
        record.update(verified=True, vote=str(rng.randrange(1, 9)))
    else:
        record["helpful"] = [0, rng.randrange(3)]
    return record


def _bad_lines(fmt: str) -> List[tuple]:
    """(reason, raw line) pairs, one per skip reason of the reader, in the field layout of `fmt`."""
    text, rating = ("text", "rating") if fmt == "2023" else ("reviewText", "overall")
    ok = "Synthetic bad record, the rest of it is fine."

    def line(**fields: object) -> bytes:
        return json.dumps({"reviewerID": "SYNTHETIC-BAD", **fields}).encode()

    return [
        ("unparseable", b'{"reviewText": "a line cut in the middle'),
        ("invalid_utf8", b'{"reviewerID": "SYNTHETIC-BAD", "' + text.encode() + b'": "caf\xe9 au lait", "' + rating.encode() + b'": 4.0}'),
        ("missing_text", line(**{rating: 4.0})),
        ("missing_text", line(**{text: "   \n ", rating: 2.0})),
        ("rating_out_of_range", line(**{text: ok, rating: 7.0})),
        ("non_numeric_rating", line(**{text: ok, rating: "five"})),
        ("non_integer_rating", line(**{text: ok, rating: 3.5})),
        ("missing_rating", line(**{text: ok})),
        ("unknown_format", b'{"reviewerID": "SYNTHETIC-BAD", "comment": "no known fields"}'),
        ("blank_line", b""),
    ]


def generate_demo_reviews(
    path: str, num_reviews: int, seed: int = 1, fmt: str = "2014", bad_records: bool = False
) -> Dict[str, object]:
    """Write `num_reviews` synthetic reviews to `path` in the raw layout of release `fmt` (gzip if `.gz`), atomically
    (an interrupted run leaves no partial file).

    With `bad_records`, one bad line per skip reason of the reader is spread through the file. Returns
    {"path", "format", "num_reviews", "lines", "ratings": {stars: count}, "bad_lines": {reason: [line numbers]}}
    where `bad_lines` also lists the 2018 records written without `reviewText` (reason "missing_text").
    """
    if fmt not in FORMATS:
        raise UserError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if num_reviews < 1:
        raise UserError(f"num_reviews must be positive, got {num_reviews}")
    writer = _Writer(seed)
    rng = random.Random(seed + 1)
    ratings = rng.choices(list(RATING_WEIGHTS), weights=list(RATING_WEIGHTS.values()), k=num_reviews)
    bad = _bad_lines(fmt) if bad_records else []
    bad_at: Dict[int, List[tuple]] = {}
    for i, item in enumerate(bad):
        bad_at.setdefault((i + 1) * num_reviews // (len(bad) + 1), []).append(item)
    bad_lines: Dict[str, List[int]] = {}
    counts = {r: 0 for r in RATING_WEIGHTS}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    line_no = 0
    with atomic_open(path, "wb") as raw:
        out = gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) if path.endswith(".gz") else raw
        for index, rating in enumerate(ratings):
            for reason, line in bad_at.get(index, ()):
                line_no += 1
                out.write(line + b"\n")
                bad_lines.setdefault(reason, []).append(line_no)
            review = writer.review(rating)
            if fmt == "2023" and rng.random() < 0.05:
                review["text"] = review["text"].replace(". ", ".<br /><br />", 1)
            record = _record(fmt.split("-")[0], index, rating, review, rng)
            line_no += 1
            if fmt == "2018" and rng.random() < MISSING_TEXT_2018:
                del record["reviewText"]
                bad_lines.setdefault("missing_text", []).append(line_no)
            else:
                counts[rating] += 1
            text = repr(record) if fmt == "2014-literal" else json.dumps(record)
            out.write(text.encode("utf-8") + b"\n")
        if out is not raw:
            out.close()
    return {
        "path": path,
        "format": fmt,
        "num_reviews": num_reviews,
        "lines": line_no,
        "ratings": counts,
        "bad_lines": {reason: sorted(lines) for reason, lines in sorted(bad_lines.items())},
    }


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """CLI entry point; returns the summary of `generate_demo_reviews`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--output", required=True, help="file to write (gzip-compressed if it ends with .gz)")
    # --demo_num_reviews and --demo_seed: train.py's names of the same two settings
    parser.add_argument("--num_reviews", "--demo_num_reviews", dest="num_reviews", type=int, default=50000,
                        help="number of synthetic reviews (default 50000)")
    parser.add_argument("--seed", "--demo_seed", dest="seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default="2014", help="raw layout to imitate (default 2014)")
    parser.add_argument("--bad_records", action="store_true", help="also write one bad line per skip reason (for tests)")
    args = parser.parse_args(argv)
    summary = generate_demo_reviews(args.output, args.num_reviews, args.seed, args.fmt, args.bad_records)
    print(f"wrote {summary['num_reviews']} SYNTHETIC reviews ({summary['lines']} lines, format {args.fmt}) to {printable(args.output)}")
    return summary


if __name__ == "__main__":
    import sys

    from fastformer.cli import run_main

    sys.exit(run_main(main))
