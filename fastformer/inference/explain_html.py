"""One self-contained HTML page of explained predictions: each review's words shaded by importance, its rating and
probabilities. No script, no external resource (a Content-Security-Policy forbids both); review text is escaped."""

from __future__ import annotations

import html
from typing import Dict, Mapping, Optional, Sequence

__all__ = ["render_page", "CONTENT_SECURITY_POLICY"]

CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; "
                           "form-action 'none'")
SUPPORT, AGAINST = (214, 96, 18), (38, 110, 190)  # word colours: for the predicted rating, against it

_STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 60em;
       color: #222; background: #fff; padding: 0 1em; }
h1 { font-size: 1.4em; margin-bottom: .2em; }
.sub { color: #555; margin-top: 0; }
.legend span { padding: 0 .3em; border-radius: 3px; }
.review { border: 1px solid #ddd; border-radius: 6px; padding: .8em 1em; margin: 1em 0; }
.head { display: flex; flex-wrap: wrap; gap: .4em 1.2em; align-items: baseline; margin-bottom: .5em; }
.stars { color: #d48806; font-size: 1.2em; letter-spacing: .05em; }
.stars .off { color: #ccc; }
.label { font-weight: 600; }
.wrong { color: #b00020; font-weight: 600; }
.note { color: #555; }
.text { white-space: pre-wrap; word-wrap: break-word; unicode-bidi: isolate; }
.text span { border-radius: 3px; }
.unread { color: #999; }
table.probs { border-collapse: collapse; font-size: .85em; margin-top: .6em; }
table.probs td { padding: 0 .5em 0 0; vertical-align: middle; }
table.probs td.b { width: 205px; }
.bar { display: inline-block; height: .7em; background: #7a8ba6; }
.bar.top { background: #d48806; }
.top { color: #555; font-size: .9em; margin-top: .3em; }
"""


def _colour(score: float, scale: float) -> str:
    """Background of a word: its share of the review's largest |score|, orange for, blue against."""
    if not scale or score == 0:
        return ""
    r, g, b = SUPPORT if score > 0 else AGAINST
    return f"background: rgba({r}, {g}, {b}, {min(1.0, abs(score) / scale) * 0.75:.3f})"


def _shaded_text(text: str, words: Sequence[Mapping]) -> str:
    """The text, escaped, with each scored word in a span (its score in the title); unread words greyed."""
    scored = [w["score"] for w in words if w.get("score") is not None]
    scale = max((abs(s) for s in scored), default=0.0)
    parts, end = [], 0
    for word in words:
        start, stop = int(word["start"]), int(word["end"])
        parts.append(html.escape(text[end:start]))
        chunk = html.escape(text[start:stop])
        score = word.get("score")
        if score is None:
            parts.append(f'<span class="unread" title="not read (after the truncation length)">{chunk}</span>')
        else:
            parts.append(f'<span style="{_colour(score, scale)}" title="{score:+.4f}">{chunk}</span>')
        end = stop
    parts.append(html.escape(text[end:]))
    return "".join(parts)


def _stars(rating: Optional[int], top: int = 5) -> str:
    if rating is None or not 1 <= int(rating) <= top:
        return ""
    rating = int(rating)
    return (f'<span class="stars" title="{rating} of {top} stars">{"★" * rating}'
            f'<span class="off">{"★" * (top - rating)}</span></span>')


def _probabilities(probabilities: Mapping[str, float], best: Optional[str]) -> str:
    rows = []
    for name, p in probabilities.items():
        top = " top" if name == best else ""
        rows.append(f'<tr><td>{html.escape(str(name))}</td><td class="b"><span class="bar{top}" '
                    f'style="width: {max(1, round(float(p) * 200))}px"></span></td><td>{float(p):.3f}</td></tr>')
    return '<table class="probs">' + "".join(rows) + "</table>"


def _review(item: Mapping, index: int) -> str:
    """One review: `item` has "text", "prediction" ({"label", "rating"?, "probabilities"}), "explanation" (from
    `Explainer.explain`) and optionally "true_label" and "note"."""
    prediction: Dict = dict(item.get("prediction") or {})
    explanation: Dict = dict(item.get("explanation") or {})
    label = prediction.get("label")
    head = [f'<span class="note">#{index}</span>', _stars(prediction.get("rating"))]
    if label is not None:
        head.append(f'<span class="label">{html.escape(str(label))}</span>')
    if item.get("true_label") is not None:
        wrong = str(item["true_label"]) != str(label)
        head.append(f'<span class="{"wrong" if wrong else "note"}">true: {html.escape(str(item["true_label"]))}'
                    "</span>")
    if item.get("note"):
        head.append(f'<span class="note">{html.escape(str(item["note"]))}</span>')
    text = str(item.get("text") or "")
    if explanation.get("words") is not None:
        body = _shaded_text(text, explanation["words"])
    else:
        body = html.escape(text)
    parts = [f'<div class="review"><div class="head">{"".join(head)}</div><div class="text">{body}</div>']
    if explanation.get("top_words"):
        words = ", ".join(html.escape(w) for w in explanation["top_words"])
        parts.append(f'<div class="top">top words: {words}</div>')
    if prediction.get("error"):
        parts.append(f'<div class="top">not predicted: {html.escape(str(prediction["error"]))}</div>')
    elif explanation.get("error"):
        parts.append(f'<div class="top">no explanation: {html.escape(str(explanation["error"]))}</div>')
    if prediction.get("probabilities"):
        parts.append(_probabilities(prediction["probabilities"], label))
    parts.append("</div>")
    return "".join(parts)


def render_page(items: Sequence[Mapping], title: str = "Explained predictions", subtitle: str = "") -> str:
    """The whole page (a str), one review block per item (see `_review`)."""
    support = "rgba({}, {}, {}, .6)".format(*SUPPORT)
    against = "rgba({}, {}, {}, .6)".format(*AGAINST)
    legend = (f'<p class="legend">Word shading: <span style="background: {support}">for the predicted rating</span> '
              f'<span style="background: {against}">against it</span>, darker = more important (hover a word for '
              "its score); grey words were not read.</p>")
    reviews = "\n".join(_review(item, i + 1) for i, item in enumerate(items))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n"
        + (f'<p class="sub">{html.escape(subtitle)}</p>\n' if subtitle else "")
        + legend + "\n" + reviews + "\n</body>\n</html>\n"
    )
