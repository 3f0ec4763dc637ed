"""Text cleaning helpers of the clean stage: HTML, URLs, character widths, whitespace.

Width policy (the why): full-width ASCII letters, digits and symbols (`ＯＰＰＯ Ｒ１５`, `８＋１２８Ｇ`, `％`) become
their ASCII forms so a model name or number is one spelling whatever the user typed; the ideographic space
becomes a space. The Chinese sentence punctuation (，。！？：；、（）「」『』《》…—“”‘’) stays full-width: it is
the normal form in Chinese text. ASCII `,!?;:` written right after a Chinese character become their
full-width forms (`很好,拍照` -> `很好，拍照`), so a sentence is punctuated one way; inside numbers and
Latin text (`8.5`, `A11:`) nothing changes.
"""

from __future__ import annotations

import re
import unicodedata
import warnings

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning

# Full-width forms kept as they are: they are the Chinese sentence punctuation.
KEEP_FULL_WIDTH = frozenset("，！？：；（）")
_BLOCK_TAGS = ("p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "dd", "dt")
_ASCII_TO_CHINESE_PUNCT = {",": "，", "!": "！", "?": "？", ";": "；", ":": "："}

_HTML_HINT = re.compile(r"<[A-Za-z/!]|&(?:#\d+|#x[0-9A-Fa-f]+|[A-Za-z]+);")
_URL = re.compile(
    r"(?:(?:https?|ftp)://|(?<![\w.@/])www\.)"  # scheme, or a bare www.
    r"[^\s\u3000-\u303f\u4e00-\u9fff\uff01-\uff0f\uff1a-\uff20]+",  # up to a space, CJK text or punctuation
    re.IGNORECASE,
)
_INVISIBLE = re.compile(r"[\u200b-\u200f\u2028\u2029\u2060\ufeff\u00ad]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f]+")
_CJK = "\u4e00-\u9fff\u3400-\u4dbf"
_PUNCT_AFTER_CJK = re.compile(rf"(?<=[{_CJK}])[,!?;:](?![0-9A-Za-z])")


def strip_html(text: str) -> str:
    """Visible text of an HTML fragment: tags removed, entities decoded, <br> and block ends as newlines."""
    if not _HTML_HINT.search(text):
        return text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(text, "html.parser")
    for tag in soup.find_all(["script", "style"]):
        tag.decompose()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for block in soup.find_all(_BLOCK_TAGS):
        block.append("\n")
    return soup.get_text("")


def remove_urls(text: str) -> str:
    """Drop http(s)/ftp URLs and bare www. addresses; they stop at whitespace, Chinese text or punctuation."""
    return _URL.sub("", text)


def normalise_width(text: str) -> str:
    """Full-width ASCII -> ASCII (except the Chinese sentence punctuation), ideographic space -> space."""
    out = []
    for ch in text:
        code = ord(ch)
        if 0xFF01 <= code <= 0xFF5E and ch not in KEEP_FULL_WIDTH:
            out.append(chr(code - 0xFEE0))
        elif ch == "\u3000":
            out.append(" ")
        else:
            out.append(ch)
    text = "".join(out)
    return _PUNCT_AFTER_CJK.sub(lambda m: _ASCII_TO_CHINESE_PUNCT[m.group()], text)


def normalise_whitespace(text: str) -> str:
    """Line endings to \\n, invisible and control characters removed, runs of spaces collapsed,
    each line stripped, empty lines dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE.sub("", text)
    text = _CONTROL.sub(" ", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def clean_text(text: str) -> str:
    """The clean stage's text: HTML removed, URLs removed, widths and whitespace normalised."""
    text = unicodedata.normalize("NFC", text)
    text = strip_html(text)
    text = remove_urls(text)
    text = normalise_width(text)
    return normalise_whitespace(text)


def join_fields(fields: list[object]) -> str:
    """Clean each non-empty field and join them with newlines (title, pros, cons, summary, body)."""
    parts = []
    for value in fields:
        if value is None:
            continue
        cleaned = clean_text(value if isinstance(value, str) else str(value))
        if cleaned:
            parts.append(cleaned)
    return "\n".join(parts)


def visible_length(text: str) -> int:
    """Characters other than whitespace: what `clean.min_text_chars` counts."""
    return sum(1 for ch in text if not ch.isspace())
