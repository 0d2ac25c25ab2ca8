"""The misclassified examples of an evaluation, worst first (by -log p(true class)), with the top words of the
explanation of each wrong prediction: written as JSON lines and as one HTML page (`explain_html`)."""

from __future__ import annotations

import json
import math
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..calibration import misclassified
from ..fileio import atomic_open
from ..labels import label_to_stars
from .explain_html import render_page

__all__ = ["misclassified_records", "write_misclassified", "JSONL_FILE", "HTML_FILE"]

JSONL_FILE, HTML_FILE = "misclassified.jsonl", "misclassified.html"


def _ratings(names: Sequence[str]) -> Optional[List[int]]:
    try:
        return label_to_stars(list(names))
    except ValueError:  # labels that are not star ratings
        return None


def misclassified_records(texts: Sequence[str], labels: Sequence[int], probabilities: np.ndarray,
                          names: Sequence[str], explainer=None, explain: int = 200) -> List[Dict[str, object]]:
    """One record per misclassified example, worst first: its line, text, true and predicted label (and star
    ratings for a rating model), probabilities, loss and, for the `explain` worst ones when an `explainer` is given,
    the explanation of the predicted class (its "top_words"; "explanation" keeps the rest for the page)."""
    ratings = _ratings(names)
    order = misclassified(probabilities, labels)
    records = []
    for i in order:
        predicted, true = int(np.argmax(probabilities[i])), int(labels[i])
        record: Dict[str, object] = {"line": i + 1, "text": texts[i], "true_label": names[true],
                                     "label": names[predicted]}
        if ratings:
            record.update(true_rating=ratings[true], rating=ratings[predicted])
        record["probabilities"] = {name: float(p) for name, p in zip(names, probabilities[i])}
        record["loss"] = round(-math.log(max(float(probabilities[i][true]), 1e-300)), 5)
        record["top_words"] = None
        records.append(record)
    chosen = records[:explain] if explainer is not None else []
    if chosen:
        targets = [list(names).index(r["label"]) for r in chosen]
        for record, explanation in zip(chosen, explainer.explain([r["text"] for r in chosen], targets)):
            explanation.pop("probabilities", None)
            record["top_words"] = explanation.get("top_words")
            record["explanation"] = explanation
    return records


def write_misclassified(output_dir: str, records: Sequence[Dict[str, object]], title: str, subtitle: str,
                        page_limit: int = 200) -> Dict[str, str]:
    """`misclassified.jsonl` (every record, without the explanations' token lists) and `misclassified.html` (the
    first `page_limit`), each written atomically; their paths."""
    jsonl, page = os.path.join(output_dir, JSONL_FILE), os.path.join(output_dir, HTML_FILE)
    with atomic_open(jsonl) as f:
        for record in records:
            row = {k: v for k, v in record.items() if k != "explanation"}
            f.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
    items = [{"text": r["text"], "prediction": r, "explanation": r.get("explanation") or {},
              "true_label": r["true_label"], "note": f"line {r['line']}, loss {r['loss']:.3f}"}
             for r in records[:page_limit]]
    with atomic_open(page) as f:
        f.write(render_page(items, title, subtitle))
    return {"jsonl": jsonl, "html": page}
