"""Labels: the star ratings 1..5 of the review task (label id = stars - 1), or any names a labelled dataset holds.

A model is a rating model when its labels are the five star ratings "1".."5" (`is_rating_model`); its predictions
then also give the number of stars.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence, Tuple

__all__ = ["RATINGS", "LABEL_NAMES", "label_maps", "label_to_stars", "is_rating_model", "label_names_of"]

RATINGS = (1, 2, 3, 4, 5)
LABEL_NAMES = [str(stars) for stars in RATINGS]


def label_maps(names: Sequence[str] = LABEL_NAMES) -> Tuple[Dict[int, str], Dict[str, int]]:
    """id2label / label2id for `names` in class-id order (default: the star ratings, label id = stars - 1)."""
    id2label = {i: name for i, name in enumerate(names)}
    return id2label, {name: i for i, name in id2label.items()}


def label_to_stars(id2label) -> List[int]:
    """Star rating of each class, in class-id order, from the label names ("1" .. "5").

    `id2label` is a {class id: name} mapping (a config's `id2label`) or the names in class-id order. A name that
    is not a star rating (a positive whole number) is a ValueError: ratings are never guessed from positions.
    """
    names = label_names_of(id2label)
    bad = [name for name in names if not str(name).strip().isdigit() or int(str(name).strip()) < 1]
    if bad:
        raise ValueError(f"label names {bad} are not star ratings: every label must be a number of stars "
                         f"(e.g. {list(LABEL_NAMES)}), got labels {names}")
    return [int(str(name).strip()) for name in names]



def label_names_of(id2label) -> List[str]:
    """The label names in class-id order, from a {class id: name} mapping or a sequence of names."""
    return [str(id2label[k]) for k in sorted(id2label, key=int)] if isinstance(id2label, Mapping) else \
        [str(name) for name in id2label]


def is_rating_model(id2label) -> bool:
    """Whether the labels are the five star ratings "1".."5" (in any order): predictions then give a `rating`."""
    return sorted(label_names_of(id2label)) == LABEL_NAMES
