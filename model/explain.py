"""What MIMN attended to: per review, per aspect, the weight every hop gave each word and each image.

`forward_with_attention` runs the model once (the same forward as training and evaluation, asked to also
return its weights); `ReviewView` holds one review's words, images and per-aspect attention; `write_review`
writes it as data (`<name>.json`) and as one self-contained HTML page (`<name>.html`: words shaded by weight,
image thumbnails inline as data URIs, the predicted and, when known, the true score). `write_index` adds an
index.html linking the pages. Used by `python -m tools.predict --explain DIR` and by the evaluate stage
(reports/explain/).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from common.atomic import write_json, write_text
from model.loop import autocast_for, to_device

THUMBNAIL_PX = 120
WEIGHT_DECIMALS = 4


@torch.no_grad()
def forward_with_attention(
    model: torch.nn.Module, inputs: dict[str, torch.Tensor], device: torch.device
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probabilities (B, C), text attention (B, H, T), image attention (B, H, K)) as float32, model in eval mode."""
    model.eval()
    with autocast_for(device):
        logits, attention = model(**to_device(inputs, device), return_attention=True)
    probs = torch.softmax(logits.float(), dim=-1)
    return (
        probs.cpu().numpy().astype(np.float32),
        attention["text"].float().cpu().numpy(),
        attention["image"].float().cpu().numpy(),
    )


@dataclass
class AspectView:
    aspect: str
    aspect_zh: str
    predicted_score: int
    probabilities: dict[int, float]  # class score -> probability
    true_score: int | None
    text_attention: list[list[float]]  # [hop][word]
    image_attention: list[list[float]]  # [hop][image read]
    training_pairs: int | None = None  # the model's training pairs of this aspect (None: not recorded)
    few_training_pairs: bool | None = None  # fewer than predict's --min-aspect-pairs: the score means little


@dataclass
class ReviewView:
    review_id: str
    words: list[str]  # the words the model read, in order
    unknown: list[bool]  # word not in the vocabulary (read as <unk>)
    words_not_read: int  # words past the model's max_text_len
    images: list[str]  # the images the model read, in memory order
    image_files: list[Path | None]  # where to read each one's thumbnail (None: not available)
    images_not_read: list[tuple[str, str]] = field(default_factory=list)  # (image, why)
    aspects: list[AspectView] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what to know before reading the scores (training data)

    def to_dict(self) -> dict:
        return {
            "review_id": self.review_id,
            **({"notes": self.notes} if self.notes else {}),
            "words": self.words,
            "unknown_words": [i for i, u in enumerate(self.unknown) if u],
            "words_not_read": self.words_not_read,
            "images": self.images,
            "images_not_read": [{"image": p, "reason": r} for p, r in self.images_not_read],
            "aspects": {
                a.aspect: {
                    "aspect_zh": a.aspect_zh,
                    "predicted_score": a.predicted_score,
                    "score": a.true_score,
                    "probabilities": {str(s): round(p, 6) for s, p in a.probabilities.items()},
                    **(
                        {"training_pairs": a.training_pairs, "few_training_pairs": a.few_training_pairs}
                        if a.few_training_pairs is not None
                        else {}
                    ),
                    "hops": [
                        {
                            "hop": h + 1,
                            "words": [round(w, 6) for w in a.text_attention[h]],
                            "images": [round(w, 6) for w in a.image_attention[h]],
                        }
                        for h in range(len(a.text_attention))
                    ],
                }
                for a in self.aspects
            },
        }


def attention_lists(weights: np.ndarray, length: int) -> list[list[float]]:
    """(H, padded) weights of one pair -> [hop][position] over its first `length` positions."""
    return [[float(w) for w in hop[:length]] for hop in weights]


RESERVED_PAGE_NAMES = {"index"}  # index.html lists the pages
HASHED_NAME = re.compile(r".*-[0-9a-f]{16}$")


def page_name(review_id: str) -> str:
    """A file stem for a review id that no other id gets: an id that is a plain lower-case file name is used as it
    is; any other (changed characters, upper case that a case-insensitive disk would fold, a reserved name such as
    `index`, or one that looks like a changed name) gets a hash of the whole id."""
    safe = re.sub(r"[^0-9a-z_.-]", "_", review_id.lower())[:80].lstrip(".") or "review"
    if safe != review_id or safe in RESERVED_PAGE_NAMES or HASHED_NAME.match(safe):
        safe += "-" + hashlib.sha256(review_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return safe


def thumbnail_data_uri(path: Path | None, size: int = THUMBNAIL_PX) -> str | None:
    """A small JPEG of the image as a data: URI, or None when it cannot be read."""
    if path is None:
        return None
    try:
        with Image.open(path) as img:
            img.draft("RGB", (size, size))
            thumb = ImageOps.exif_transpose(img).convert("RGB")
            thumb.thumbnail((size, size))
            buffer = io.BytesIO()
            thumb.save(buffer, format="JPEG", quality=80)
    except Exception:  # noqa: BLE001 - any unreadable file just gets no thumbnail
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


STYLE = """
body{font-family:system-ui,"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;margin:1.5em;max-width:72em;color:#222}
h1{font-size:1.3em}h2{font-size:1.1em;margin:1.4em 0 .3em;border-top:1px solid #ccc;padding-top:.6em}
h3{font-size:.9em;margin:.8em 0 .2em;color:#555}.key{color:#777;font-weight:normal;font-size:.85em}
.meta,.legend,.scores{font-size:.9em}.probs{color:#666;font-size:.8em}
.words{line-height:1.9;margin:.2em 0}.w{padding:1px 2px;border-radius:3px;margin-right:2px}
.unk{text-decoration:underline dotted}
.images{display:flex;flex-wrap:wrap;gap:10px;margin:.3em 0}
figure{margin:0;text-align:center;font-size:.8em}figure img{display:block;border:4px solid;border-radius:3px}
.noimg{width:80px;height:80px;border:1px dashed #999;font-size:.7em;overflow:hidden}
.correct{color:#1a7f37}.wrong{color:#c62828}.warning{background:#fff3cd;padding:.4em;border-radius:3px}
.few{color:#c62828}
"""


def shades(weights: list[float]) -> list[float]:
    """0..1 per item: how far its weight is above an even share (1/n), relative to the largest weight. An even
    spread shades nothing, so a flat hop does not look as if it attended to everything."""
    if not weights:
        return []
    even, top = 1.0 / len(weights), max(weights)
    if top - even < 1e-6:
        return [0.0] * len(weights)
    return [min(1.0, max(0.0, (w - even) / (top - even))) for w in weights]


def _word_spans(view: ReviewView, weights: list[float]) -> str:
    spans = []
    for word, unknown, weight, alpha in zip(view.words, view.unknown, weights, shades(weights), strict=False):
        css = "w unk" if unknown else "w"
        note = " (not in the vocabulary)" if unknown else ""
        spans.append(
            f'<span class="{css}" style="background:rgba(230,81,0,{0.85 * alpha:.3f})" '
            f'title="{weight:.{WEIGHT_DECIMALS}f}{note}">{html.escape(word)}</span>'
        )
    return "".join(spans)


def _image_figures(view: ReviewView, thumbnails: list[str | None], weights: list[float]) -> str:
    figures = []
    for index, (name, uri, weight, alpha) in enumerate(
        zip(view.images, thumbnails, weights, shades(weights), strict=False), start=1
    ):
        border = f"rgba(230,81,0,{alpha:.3f})"
        label = html.escape(name)
        picture = (
            f'<img src="{uri}" alt="image {index}: {label}" title="{label}" style="border-color:{border}">'
            if uri
            else f'<div class="noimg" title="{label}" style="border-color:{border}">{label}</div>'
        )
        figures.append(
            f"<figure>{picture}<figcaption>image {index}: {weight:.{WEIGHT_DECIMALS}f}</figcaption></figure>"
        )
    return "".join(figures)


def render_html(view: ReviewView) -> str:
    """One self-contained page (no external file, script or font) for a review."""
    thumbnails = [thumbnail_data_uri(f) for f in view.image_files]
    title = html.escape(view.review_id)
    parts = [
        f'<!DOCTYPE html>\n<html lang="zh"><head><meta charset="utf-8"><title>review {title}: attention</title>',
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{title}: what each hop attended to</h1>",
        *[f'<p class="warning">{html.escape(note)}</p>' for note in view.notes],
        f'<p class="meta">{len(view.words)} words and {len(view.images)} image(s) read by the model'
        + (
            f"; {view.words_not_read} later words not read (past the model's text length)"
            if view.words_not_read
            else ""
        )
        + "</p>",
    ]
    if view.images_not_read:
        items = "".join(f"<li>{html.escape(p)}: {html.escape(r)}</li>" for p, r in view.images_not_read)
        parts.append(f'<p class="meta">images not read:</p><ul class="meta">{items}</ul>')
    parts.append(
        '<p class="legend">Colour of a word (or an image\'s border): how far its weight is above an even '
        "share, relative to the hop's largest weight (an even spread is not coloured). Hover a word for its "
        "weight. Dotted words are not in the vocabulary.</p>"
    )
    for aspect in view.aspects:
        top = max(aspect.probabilities.values(), default=0.0)
        verdict = ""
        if aspect.true_score is not None:
            css = "correct" if aspect.true_score == aspect.predicted_score else "wrong"
            verdict = f' · true <b class="true {css}">{aspect.true_score}</b>'
        if aspect.few_training_pairs:
            verdict += (
                f' · <span class="few">only {aspect.training_pairs} training pair(s) of this aspect: '
                "the score means little</span>"
            )
        probs = " ".join(f"{s}: {p:.3f}" for s, p in aspect.probabilities.items())
        parts.append(
            f'<section class="aspect" id="aspect-{html.escape(aspect.aspect)}">'
            f'<h2>{html.escape(aspect.aspect_zh)} <span class="key">{html.escape(aspect.aspect)}</span></h2>'
            f'<p class="scores">predicted <b class="predicted">{aspect.predicted_score}</b> '
            f"(p = {top:.3f}){verdict}</p>"
            f'<p class="probs">class probabilities: {probs}</p>'
        )
        for hop, (text_w, image_w) in enumerate(
            zip(aspect.text_attention, aspect.image_attention, strict=False), start=1
        ):
            parts.append(f'<div class="hop"><h3>hop {hop}</h3><p class="words">{_word_spans(view, text_w)}</p>')
            if view.images:
                parts.append(f'<div class="images">{_image_figures(view, thumbnails, image_w)}</div>')
            parts.append("</div>")
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_review(view: ReviewView, out_dir: str | Path) -> str:
    """<out_dir>/<name>.json and <name>.html for one review (each written atomically); returns the name."""
    name = page_name(view.review_id)
    write_json(view.to_dict(), Path(out_dir) / f"{name}.json", sort_keys=False)
    write_text(render_html(view), Path(out_dir) / f"{name}.html")
    return name


IndexEntry = tuple[str, list[tuple[str, int, int | None]]]  # review id, [(aspect, predicted, true)]


def index_entry(view: ReviewView) -> IndexEntry:
    return view.review_id, [(a.aspect, a.predicted_score, a.true_score) for a in view.aspects]


def write_index(entries: list[IndexEntry], out_dir: str | Path, heading: str, notes: list[str] = ()) -> None:
    """index.html: the notes, then one line per review page, with each aspect's predicted (and true) score."""
    rows = []
    for review_id, aspects in entries:
        scores = ", ".join(
            f"{html.escape(aspect)} {predicted}" + (f" (true {true})" if true is not None else "")
            for aspect, predicted, true in aspects
        )
        rows.append(f'<li><a href="{page_name(review_id)}.html">{html.escape(review_id)}</a>: {scores}</li>')
    write_text(
        f'<!DOCTYPE html>\n<html lang="zh"><head><meta charset="utf-8"><title>{html.escape(heading)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(heading)}</h1>"
        + "".join(f'<p class="warning">{html.escape(note)}</p>' for note in notes)
        + f"<ul>{''.join(rows)}</ul>"
        "</body></html>\n",
        Path(out_dir) / "index.html",
    )
