"""The paper's six aspects and the labels ZOL uses for them.

This module is the single source of truth for aspect names: the spider maps site labels to
canonical keys with it, the mirror generator writes site labels from it, and the data stages
read the Chinese names (the paper's) from it.
"""

from __future__ import annotations

# canonical key -> the paper's Chinese name (order = the paper's Table 1 order)
ASPECT_ZH: dict[str, str] = {
    "price_performance": "性价比",
    "performance": "性能配置",
    "battery": "电池续航",
    "appearance": "外观手感",
    "camera": "拍照效果",
    "screen": "屏幕效果",
}

# every label seen on the site (2016-2018 layouts) -> canonical key
SITE_LABELS: dict[str, str] = {
    "性价比": "price_performance",
    "性能": "performance",
    "性能配置": "performance",
    "续航": "battery",
    "电池续航": "battery",
    "续航能力": "battery",
    "外观": "appearance",
    "外观手感": "appearance",
    "拍照": "camera",
    "拍照效果": "camera",
    "屏幕": "screen",
    "屏幕效果": "screen",
}

CANONICAL_ASPECTS: tuple[str, ...] = tuple(ASPECT_ZH)


def normalise_label(label: str) -> str:
    """Strip the decoration around a score label: whitespace and a trailing (full- or half-width) colon."""
    return label.strip().rstrip("：:").strip()


def canonical_aspect(label: str) -> str | None:
    """Canonical key for a site label (`续航：` -> `battery`), or None when the label is unknown."""
    return SITE_LABELS.get(normalise_label(label))


def aspect_zh(key: str) -> str:
    """The paper's Chinese name for a canonical key; an unknown key (a label kept as-is) is its own name."""
    return ASPECT_ZH.get(key, key)
