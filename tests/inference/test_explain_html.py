"""fastformer.inference.explain_html: a valid, self-contained page; review text escaped, so nothing in a review can run."""

from html.parser import HTMLParser

import pytest

from fastformer.inference import explain
from fastformer.inference.explain_html import CONTENT_SECURITY_POLICY, render_page
from tiny_model import tiny_model

HOSTILE = [
    'Broke at once <script>document.title="pwned"</script> do not buy',
    '"><img src=x onerror="alert(1)"> <a href="javascript:alert(2)">link</a> great',
    "</div></body><style>body{display:none}</style> it works & costs <5 $ \u202e evil",
]
VOID = {"meta", "br", "img", "hr", "input", "link"}


class Checker(HTMLParser):
    """Tags balanced, every element and attribute recorded, the text of each review's text block collected."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.tags, self.attributes, self.texts = [], [], [], []
        self._in_text = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes.extend(attrs)
        if tag not in VOID:
            self.stack.append(tag)
            if self._in_text:
                self._in_text += 1
            elif ("class", "text") in attrs:
                self._in_text = 1
                self.texts.append("")

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()
        if self._in_text:
            self._in_text -= 1

    def handle_data(self, data):
        if self._in_text:
            self.texts[-1] += data


@pytest.fixture(scope="module")
def page():
    model, tokenizer = tiny_model(HOSTILE, seed=0, max_positions=64)
    explainer = explain.Explainer(model, tokenizer, max_length=12, method="gradient")
    items = [{"text": text, "explanation": e, "true_label": "2",
              "prediction": {"label": e["label"], "rating": int(e["label"]), "probabilities": e["probabilities"]}}
             for text, e in zip(HOSTILE, explainer.explain(HOSTILE))]
    items.append({"text": "   ", "explanation": {"error": "text has no tokens"}, "prediction": {"label": None}})
    return render_page(items, title="<b>reviews</b>", subtitle="method: gradient <i>x</i> input")


def test_the_page_is_valid_and_self_contained(page):
    checker = Checker()
    checker.feed(page)
    checker.close()
    assert checker.stack == [] and page.startswith("<!DOCTYPE html>")
    assert ("content", CONTENT_SECURITY_POLICY) in checker.attributes  # no script, no fetch, even if escaping failed
    assert "script" not in checker.tags and "img" not in checker.tags and "a" not in checker.tags
    assert checker.tags.count("style") == 1 and checker.tags.count("title") == 1
    assert not any(name.startswith("on") or name in ("src", "href") for name, _ in checker.attributes)
    assert "http://" not in page and "https://" not in page and "url(" not in page


def test_review_text_is_shown_exactly_as_written(page):
    checker = Checker()
    checker.feed(page)
    assert checker.texts[: len(HOSTILE)] == HOSTILE  # escaped markup reads back as the review's own characters
    assert "&lt;script&gt;" in page and "<b>reviews</b>" not in page and "&lt;b&gt;reviews&lt;/b&gt;" in page


def test_words_are_shaded_and_unread_words_greyed(page):
    assert page.count('class="unread"') > 0  # max_length 12 leaves the ends unread
    assert "rgba(214, 96, 18" in page and 'title="+' in page
    assert "no explanation: text has no tokens" in page
    assert page.count('class="review"') == len(HOSTILE) + 1
