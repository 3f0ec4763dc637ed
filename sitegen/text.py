"""Review text for the offline mirror: each scored aspect is discussed in words that fit its score.

Phrases are grouped by aspect (canonical key, or a site label the map does not know, like 信号) and by
score band (2/4/6/8/10). A model trained on the mirror can learn every aspect from the text except the
camera, which is put in words for only about half of the reviews that score it (the images always show it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

BANDS: tuple[int, ...] = (2, 4, 6, 8, 10)

# aspect -> band -> phrases (each one sentence, no final punctuation)
PHRASES: dict[str, dict[int, tuple[str, ...]]] = {
    "battery": {
        2: (
            "续航太差了，半天就没电",
            "电池掉电飞快，一天要充三次",
            "4000毫安的电池形同虚设，待机都耗电严重",
            "续航简直灾难，出门必须带充电宝",
        ),
        4: (
            "续航不太行，晚上就得充电",
            "电池不耐用，玩一会游戏电量就掉得厉害",
            "续航比较差，毫安数虚标的感觉",
            "待机耗电有点快，续航让人失望",
        ),
        6: (
            "续航一般，正常用刚好撑一天",
            "电池表现中规中矩，重度使用不够",
            "续航还凑合，算不上好",
            "电量够用但没有惊喜",
        ),
        8: (
            "续航不错，正常用一天没问题",
            "电池挺耐用，充电也比较快",
            "续航表现良好，一天一充足够",
            "电池容量大，用到晚上还有不少电",
        ),
        10: (
            "续航超强，重度使用两天一充",
            "电池太给力了，4000毫安加快充非常省心",
            "续航无敌，出门再也不用带充电宝",
            "续航出色，待机几乎不掉电",
        ),
    },
    "camera": {
        2: (
            "拍照糊成一片，夜景全是噪点",
            "相机太差了，像素再高也没用，照片发紫",
            "拍出来的照片又暗又糊，对焦慢",
            "拍照效果惨不忍睹，色彩严重偏色",
        ),
        4: ("拍照一般偏差，暗光下噪点多", "照片发灰，夜景拍不清楚", "相机对焦慢，成像偏暗", "拍照不太行，色彩不准"),
        6: (
            "拍照中规中矩，白天还行晚上一般",
            "相机成像普通，够发朋友圈",
            "拍照凑合，夜景有点噪点",
            "像素够用，但细节一般",
        ),
        8: ("拍照挺清楚，白天成像很好", "相机不错，夜景也能拍清楚", "拍照效果好，色彩自然", "双摄拍人像虚化挺漂亮"),
        10: (
            "拍照效果惊艳，夜景纯净通透",
            "相机非常强，照片清晰锐利色彩真实",
            "拍照一流，像素高细节丰富",
            "夜景模式太棒了，暗光也很亮",
        ),
    },
    "performance": {
        2: (
            "性能太差，打开应用都卡顿",
            "处理器很弱，玩游戏卡成幻灯片",
            "系统经常卡死，后台动不动就被杀",
            "卡顿严重，用了一周就开始掉帧",
        ),
        4: (
            "性能一般偏弱，大型游戏会卡顿",
            "处理器发热明显，玩游戏掉帧",
            "系统偶尔卡顿，运行不够流畅",
            "跑分不高，多开应用有点卡",
        ),
        6: (
            "性能够用，日常使用还算流畅",
            "处理器中端水平，游戏只能中画质",
            "运行速度一般，偶尔小卡",
            "性能中规中矩，不算快也不算慢",
        ),
        8: (
            "性能不错，玩游戏很流畅",
            "骁龙处理器很给力，日常使用不卡",
            "运行流畅，多开应用也没问题",
            "性能挺强，王者荣耀稳定满帧",
        ),
        10: (
            "性能超强，骁龙845什么游戏都不卡",
            "麒麟970太强了，运行丝般顺滑",
            "性能怪兽，跑分很高，吃鸡极高画质无压力",
            "运行速度飞快，从来没有卡顿过",
        ),
    },
    "appearance": {
        2: ("外观太丑了，做工粗糙", "手感很差，边框硌手", "颜值很低，塑料感太重", "外形难看，厚重又笨拙"),
        4: ("外观一般，有点厚重", "手感不太好，机身偏滑", "颜值不高，配色有点土", "做工一般，缝隙有点大"),
        6: ("外观中规中矩，没什么特色", "手感还可以，就是有点重", "颜值一般般，看久了还行", "外形普通，做工说得过去"),
        8: ("外观好看，手感不错", "颜值挺高，机身轻薄", "做工精致，握持很舒服", "配色漂亮，玻璃后盖很有质感"),
        10: (
            "外观非常漂亮，颜值爆表",
            "手感一流，做工极其精致",
            "颜值超高，全面屏设计太美了",
            "外形惊艳，拿在手里爱不释手",
        ),
    },
    "price_performance": {
        2: (
            "性价比太低，价格贵得离谱",
            "这个价格完全不值，智商税",
            "性价比极差，同价位能买更好的",
            "价格虚高，买了后悔",
        ),
        4: ("性价比不高，价格有点贵", "价格偏高，配置对不起这个价", "不太值这个价，降价再买", "性价比一般偏低"),
        6: ("性价比一般，价格还能接受", "价格中规中矩，不算便宜", "性价比还行，等降价更好", "价格和配置基本对得上"),
        8: ("性价比不错，价格实惠", "这个价格很值，配置很高", "性价比挺高，物有所值", "价格合理，比同价位的好"),
        10: ("性价比超高，价格太良心了", "这个价格买到这配置太值了", "性价比无敌，闭眼入", "价格实惠，性价比之王"),
    },
    "screen": {
        2: (
            "屏幕太差，发黄还有漏光",
            "屏幕分辨率低，颗粒感严重",
            "屏幕很暗，阳光下完全看不清",
            "屏幕显示效果糟糕，偏色严重",
        ),
        4: (
            "屏幕一般偏差，色彩发灰",
            "屏幕亮度不够，户外看不清",
            "屏幕有点偏黄，显示不细腻",
            "屏幕边缘有阴影，观感不好",
        ),
        6: ("屏幕中规中矩，显示还行", "屏幕一般，色彩普通", "全面屏还可以，就是下巴有点宽", "屏幕显示够用，不算惊艳"),
        8: ("屏幕显示清晰，色彩鲜艳", "全面屏看视频很爽", "屏幕素质不错，亮度够高", "屏幕细腻，看着很舒服"),
        10: (
            "屏幕太惊艳了，OLED色彩非常通透",
            "全面屏视觉效果一流，清晰细腻",
            "屏幕素质顶级，阳光下也看得清",
            "2K屏显示效果非常棒",
        ),
    },
    "信号": {
        2: ("信号太差，电梯里直接没信号", "信号极弱，经常断网"),
        4: ("信号不太好，地下室经常没信号", "信号一般偏弱，通话偶尔断"),
        6: ("信号一般，够用", "信号中规中矩"),
        8: ("信号不错，双卡都很稳定", "信号挺好，通话清晰"),
        10: ("信号超强，地铁里网速都很快", "信号非常稳定，从来不掉线"),
    },
}

# Neutral camera wording for reviews that score the camera but do not describe its quality.
CAMERA_NEUTRAL: tuple[str, ...] = ("拍照功能还没怎么用", "相机暂时没怎么试", "平时很少拍照，这方面不好说")

TITLES: dict[str, dict[int, tuple[str, ...]]] = {
    "battery": {
        2: ("续航太差", "电池不行"),
        4: ("续航不理想",),
        6: ("续航一般",),
        8: ("续航不错",),
        10: ("续航给力", "超长续航"),
    },
    "camera": {
        2: ("拍照太差了",),
        4: ("拍照不太行",),
        6: ("拍照一般",),
        8: ("拍照挺好",),
        10: ("拍照神机", "夜景惊艳"),
    },
    "performance": {
        2: ("卡顿严重",),
        4: ("性能有点弱",),
        6: ("性能够用",),
        8: ("运行流畅",),
        10: ("性能怪兽", "游戏神机"),
    },
    "appearance": {
        2: ("外观太丑",),
        4: ("颜值一般",),
        6: ("外观普通",),
        8: ("颜值不错",),
        10: ("颜值爆表", "手感一流"),
    },
    "price_performance": {2: ("太贵了不值",), 4: ("性价比不高",), 6: ("价格还行",), 8: ("很值",), 10: ("性价比之王",)},
    "screen": {2: ("屏幕太差",), 4: ("屏幕一般偏差",), 6: ("屏幕还行",), 8: ("屏幕不错",), 10: ("屏幕惊艳",)},
    "信号": {2: ("信号太差",), 4: ("信号偏弱",), 6: ("信号一般",), 8: ("信号不错",), 10: ("信号超强",)},
}
TITLE_ENDINGS: dict[str, tuple[str, ...]] = {
    "good": ("，值得入手", "，推荐购买", "，很满意", "", "！"),
    "bad": ("，有点失望", "，不推荐", "，后悔了", "", "。。。"),
}

FILLERS: tuple[str, ...] = (
    "京东买的，第二天就到了",
    "用了一个月了来评价一下",
    "包装很简单，配件齐全",
    "给家里人买的",
    "双卡双待很方便",
    "客服态度挺好",
    "赠送了手机壳和贴膜",
    "之前一直用的苹果，这次换个安卓试试",
    "系统更新挺频繁的",
    "NFC坐公交很方便",
    "指纹解锁还算灵敏",
    "官网抢购的，等了好几天",
)
NO_CONS: tuple[str, ...] = ("暂时没发现明显缺点", "充电器有点大，不方便携带", "没有耳机孔，需要转接头", "暂时没有")
NO_PROS: tuple[str, ...] = ("没什么特别的优点", "能打电话", "暂时没发现")
SUMMARIES: dict[int, tuple[str, ...]] = {
    2: ("非常不推荐，买了后悔", "很失望，已经准备换机了"),
    4: ("不太推荐，等等别的机型吧", "整体不太满意"),
    6: ("整体还行，中规中矩", "凑合用吧，没有惊喜"),
    8: ("总体挺满意的，推荐购买", "整体不错，值得考虑"),
    10: ("非常满意，强烈推荐", "完美的一台手机，五星好评"),
}
# headings of the long review's sections, per aspect
SECTION_HEADINGS: dict[str, str] = {
    "appearance": "外观设计",
    "screen": "屏幕显示",
    "performance": "性能体验",
    "battery": "续航充电",
    "camera": "拍照样张",
    "price_performance": "价格与购买",
    "信号": "信号通话",
}
LONG_OPENINGS: tuple[str, ...] = (
    "作为今年的旗舰新品，这台手机我已经用了一段时间，下面从几个方面说说真实感受",
    "入手快一个月了，写个长篇评测给想买的朋友参考",
    "这次换机纠结了很久，最终选了它，下面详细说说使用体验",
)


def score_band(score: float) -> int:
    """The 2/4/6/8/10 band a score falls in (editors' decimals included: 8.7 -> 8, 6.4 -> 6)."""
    return min(BANDS, key=lambda band: (abs(band - score), -band))


@dataclass
class ReviewText:
    title: str
    pros: list[str]
    cons: list[str]
    summary: str | None
    sections: list[tuple[str, list[str]]] = field(default_factory=list)  # long reviews: (heading, paragraphs)

    @property
    def excerpt(self) -> str:
        """The start of a long review's body, as the list page shows it."""
        first = self.sections[0][1][0] if self.sections else ""
        return first[:90]


def _phrase(rng: random.Random, aspect: str, score: float) -> str:
    """A phrase for the score's band, now and then one from a neighbouring band (people are not exact)."""
    band = score_band(score)
    if rng.random() < 0.15:
        index = BANDS.index(band) + rng.choice((-1, 1))
        band = BANDS[max(0, min(len(BANDS) - 1, index))]
    return rng.choice(PHRASES[aspect][band])


def compose_text(
    rng: random.Random, scores: dict[str, float], mention_camera: bool, unscored_mentions: dict[str, float], long: bool
) -> ReviewText:
    """Title, pros (high-scored aspects), cons (low ones), summary and, for a long review, its sections."""
    described = {a: s for a, s in scores.items() if a != "camera" or mention_camera}
    spoken = dict(described)
    spoken.update(unscored_mentions)
    phrases = {aspect: _phrase(rng, aspect, score) for aspect, score in sorted(spoken.items())}
    order = sorted(spoken, key=lambda a: (-spoken[a], a))
    pros = [phrases[a] for a in order if spoken[a] >= 8]
    cons = [phrases[a] for a in order[::-1] if spoken[a] < 8]
    if "camera" in scores and not mention_camera and rng.random() < 0.5:
        (pros if rng.random() < 0.5 else cons).append(rng.choice(CAMERA_NEUTRAL))
    if rng.random() < 0.6:
        (pros if pros else cons).insert(0, rng.choice(FILLERS))
    pros = pros or [rng.choice(NO_PROS)]
    cons = cons or [rng.choice(NO_CONS)]

    # the title names the aspect the reviewer feels strongest about
    extreme = max(sorted(described), key=lambda a: abs(described[a] - 6))
    band = score_band(described[extreme])
    mood = "good" if band >= 8 else "bad" if band <= 4 else rng.choice(("good", "bad"))
    title = rng.choice(TITLES[extreme][band]) + rng.choice(TITLE_ENDINGS[mood])

    overall = sum(scores.values()) / len(scores)
    summary = None
    if long or rng.random() < 0.6:
        summary = rng.choice(SUMMARIES[score_band(overall)])
        if rng.random() < 0.5:
            summary = rng.choice(FILLERS) + "，" + summary

    sections: list[tuple[str, list[str]]] = []
    if long:
        sections.append(("前言", [rng.choice(LONG_OPENINGS) + "。" + rng.choice(FILLERS) + "。"]))
        for aspect in sorted(spoken, key=lambda a: list(SECTION_HEADINGS).index(a) if a in SECTION_HEADINGS else 99):
            paragraphs = [phrases[aspect] + "。" + _phrase(rng, aspect, spoken[aspect]) + "。"]
            if rng.random() < 0.5:
                paragraphs.append(rng.choice(FILLERS) + "。")
            sections.append((SECTION_HEADINGS.get(aspect, aspect), paragraphs))
        if "camera" in scores and not mention_camera:
            sections.append((SECTION_HEADINGS["camera"], [rng.choice(CAMERA_NEUTRAL) + "，直接放几张样张吧。"]))
        sections.append(("总结", [summary + "。"]))
    return ReviewText(title=title, pros=pros, cons=cons, summary=summary, sections=sections)
