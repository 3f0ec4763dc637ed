"""tools.predict and model.explain on a tiny model trained here: one review typed in, a batch of raw records and of a
segmented split, attention pages (rendered in headless Chromium when it is installed), the evaluate stage's
pages, and the refusal of image features from other backbone weights."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from PIL import Image
from test_model_synthetic import SENTIMENT_WORDS, write_dataset
from test_model_train import TINY_PARAMS

from model import evaluate, explain, train
from model.config import MIMNConfig
from model.data import batch_inputs, features_record
from model.mimn import MIMN
from pipeline import backbone
from pipeline.clean import CleanParams, records_to_pairs
from pipeline.features import FeatureConfig, run_features
from pipeline.io import read_frame, write_frame
from pipeline.schema import SEGMENTED_SCHEMA
from pipeline.segment import SegmentParams, aspect_token_column, segment_frame
from tools import predict

REPO = Path(__file__).resolve().parents[1]
ASPECTS = ["price_performance", "performance", "battery", "appearance", "camera", "screen"]
# data/raw/images/full/img000..011.jpg: img000 solid blue and img001 solid green (easy to find in a screenshot, far
# from the page's orange shading), img003 not an image, the others seeded noise (so the features vary in every
# dimension and their standardisation does not magnify rounding)
SOLID = {0: (0, 0, 255), 1: (0, 255, 0)}
SEGMENT = {
    "user_dict": "data/lexicon/user_dict.txt",
    "stopwords": "data/lexicon/stopwords.txt",
    "remove_punctuation": True,
    "remove_stopwords": True,
    "filter_presegmented": False,
}
# the raw reviews came from a crawl of the generated sample site, as params.yaml says by default (model/provenance.py)
SAMPLE_SOURCE = {
    "sample": {"out": "data/sample_site"},
    "crawl": {"out": "data/raw/zol", "mirror": "data/sample_site"},
    "data": {"raw": "data/raw/zol"},
}
FEATURES = FeatureConfig(weights="random", image_size=32, batch_size=8, device="cpu", seed=0, precision="fp32")


class TorchState:
    """torch's global settings, restored after a stage changed them (threads, deterministic mode)."""

    def __enter__(self):
        self.saved = (
            torch.get_num_threads(),
            torch.are_deterministic_algorithms_enabled(),
            torch.utils.deterministic.fill_uninitialized_memory,
        )

    def __exit__(self, *exc):
        torch.set_num_threads(self.saved[0])
        torch.use_deterministic_algorithms(self.saved[1])
        torch.utils.deterministic.fill_uninitialized_memory = self.saved[2]


def write_images(root: Path) -> None:
    folder = root / "data/raw/images/full"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(12):
        path = folder / f"img{i:03d}.jpg"
        if i == 3:
            path.write_bytes(b"not a jpeg")
        elif i in SOLID:
            Image.new("RGB", (64, 48), SOLID[i]).save(path, quality=95)
        else:
            Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path, quality=95)


def build_project(root: Path, with_images: bool = True) -> None:
    """Segmented splits whose images are real files, the real features stage (random ResNet-50, tag
    random:seed=0), a tiny trained model and the evaluate stage, in `root` (the working directory)."""
    write_dataset(root)
    shutil.copytree(REPO / "data/lexicon", root / "data/lexicon")
    params = {**TINY_PARAMS, "segment": SEGMENT, **SAMPLE_SOURCE}
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    for split in ("train", "dev", "test"):  # aspect tokens as the segment stage writes them
        path = root / f"data/segmented/{split}.parquet"
        frame = read_frame(path)
        frame["aspect_tokens"] = aspect_token_column(frame["aspect_zh"], SegmentParams(**SEGMENT))
        for column in ("text", "tokens"):  # one text per review, as the pipeline's splits have
            frame[column] = frame.groupby("review_id")[column].transform("first")
        if not with_images:
            frame["image_paths"] = [[] for _ in range(len(frame))]
            frame["n_images"] = 0
        write_frame(frame, path, SEGMENTED_SCHEMA)
    write_images(root)
    with TorchState():
        run_features(
            FEATURES,
            root / "data/segmented",
            root / "data/features/images.parquet",
            root / "data/features/cache.parquet",
            root / "metrics/features.json",
            root,
        )
        assert train.main(["--params", "params.yaml"]) == 0
        ckpt = torch.load(root / "models/mimn.pt", weights_only=True)
        if "features" not in ckpt:  # what train.py is to store: the features file's record
            ckpt["features"] = features_record(root / "data/features/images.parquet")
            torch.save(ckpt, root / "models/mimn.pt")
        if with_images:
            assert evaluate.main(["--params", "params.yaml"]) == 0


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("predict")
    cwd = Path.cwd()
    os.chdir(root)
    try:
        build_project(root)
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def workdir(project, monkeypatch):
    monkeypatch.chdir(project)
    with TorchState():
        torch.set_num_threads(1)
        yield project


def run_predict(capsys, *args: str) -> tuple[int, str, str]:
    code = predict.main(["--device", "cpu", "--num-workers", "0", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_names_every_input_and_output(capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert all(
        option in text for option in ("--text", "--image", "--input", "--aspect", "--out", "--explain", "--weights")
    )


def test_attention_comes_from_the_same_forward_and_is_a_distribution_over_real_items():
    torch.manual_seed(0)
    model = MIMN(MIMNConfig(vocab_size=40, num_classes=10, embed_dim=8, hidden_dim=4, image_dim=6, hops=3)).eval()
    g = torch.Generator().manual_seed(1)
    inputs = batch_inputs(
        [torch.randint(2, 40, (n,), generator=g) for n in (5, 2, 9)],
        [torch.randint(2, 40, (2,), generator=g) for _ in range(3)],
        [torch.randn(k, 6, generator=g) for k in (2, 0, 4)],
        image_dim=6,
    )
    logits, attention = model(**inputs, return_attention=True)
    assert torch.equal(logits, model(**inputs))
    text, image = attention["text"], attention["image"]
    assert text.shape == (3, 3, 9) and image.shape == (3, 3, 4)
    for row, (n_words, n_images) in enumerate([(5, 2), (2, 0), (9, 4)]):
        assert torch.allclose(text[row, :, :n_words].sum(-1), torch.ones(3))
        assert (text[row, :, n_words:] == 0).all() and (image[row, :, n_images:] == 0).all()
        assert torch.allclose(image[row].sum(-1), torch.full((3,), 1.0 if n_images else 0.0))
    # hop 1's text attention is the aspect-guided layer's own weighting of the text memory
    memory = model.text_encoder(model.embedding(inputs["text_ids"]), inputs["text_lengths"])
    aspect = model.aspect_encoder(model.embedding(inputs["aspect_ids"]), inputs["aspect_lengths"]).sum(1) / inputs[
        "aspect_lengths"
    ].unsqueeze(1)
    _, hop1 = model.text_aspect_attention.attend(memory, aspect, text[:, 0] > 0)
    assert torch.allclose(hop1, text[:, 0], atol=1e-6)


def test_one_review_typed_in_gets_six_aspect_scores(workdir, capsys):
    code, out, err = run_predict(
        capsys,
        "--text",
        f"手机 不错 {SENTIMENT_WORDS[9]}，系统流畅",
        "--image",
        "data/raw/images/full/img000.jpg",
        "--image",
        "data/raw/images/full/img001.jpg",
    )
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["review_id"] == "review" and result["images"] == 2 and result["words"] >= 3
    assert list(result["aspects"]) == ASPECTS
    for aspect in result["aspects"].values():
        probs = {int(s): p for s, p in aspect["probabilities"].items()}
        assert sorted(probs) == list(range(1, 11)) and sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
        assert aspect["predicted_score"] == max(probs, key=probs.get) and "score" not in aspect
    assert "性价比" in err and "屏幕效果" in err  # the human-readable line on stderr

    code, out, _ = run_predict(capsys, "--text", "电池 续航 很好", "--aspect", "battery", "--aspect", "camera")
    assert code == 0 and list(json.loads(out)["aspects"]) == ["battery", "camera"]


def test_a_batch_of_a_segmented_split_matches_the_evaluate_stage(workdir, capsys):
    """Images are featurised anew from their files by the recorded backbone: the probabilities must be the
    evaluate stage's, which used the features stage's file."""
    code, _, err = run_predict(capsys, "--input", "data/segmented/test.parquet", "--out", "out/pred.parquet")
    assert code == 0, err
    assert "predict: 6 reviews, 0 not predictable" in err
    ours = pd.read_parquet("out/pred.parquet")
    assert len(ours) == 6 * 6 and ours["error"].isna().all()
    theirs = pd.read_parquet("reports/predictions.parquet")
    merged = theirs.merge(ours, on=["review_id", "aspect"], suffixes=("", "_ours"))
    assert len(merged) == len(theirs) == 36
    assert (merged["score"] == merged["score_ours"]).all()
    assert np.allclose(np.stack(merged["probabilities"]), np.stack(merged["probabilities_ours"]), atol=1e-4)
    assert (merged["predicted_score"] == merged["predicted_score_ours"]).all()
    assert json.loads(pq.read_schema("out/pred.parquet").metadata[b"class_scores"]) == list(range(1, 11))


RAW_RECORDS = [
    {
        "review_id": "n1",
        "title": "好手机",
        "pros": "拍照<b>清晰</b>,电池耐用 词9 https://x.cn/a",
        "cons": "发热",
        "summary": None,
        "body": None,
        "scores": {"续航": 9, "拍照效果": "8.5", "音质": 7},
        "image_urls": ["u-missing", "u-ok"],
        "images": [{"url": "u-ok", "path": "ok.jpg"}, {"url": "u-missing", "path": "missing.jpg"}],
    },
    "this line is not JSON",
    {"review_id": "n3", "title": "。。。", "scores": {"续航": 5}},
    {"review_id": "n4", "body": "ＯＰＰＯ 屏幕 很好 词3", "scores": {"屏幕": 3}},
]


def test_a_batch_of_raw_records_is_read_as_the_clean_and_segment_stages_read_it(workdir, capsys):
    raw = workdir / "data/raw/new"
    (raw / "images").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 40), (0, 0, 255)).save(raw / "images/ok.jpg")
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in RAW_RECORDS]
    (raw / "reviews.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    code, _, err = run_predict(capsys, "--input", str(raw / "reviews.jsonl"), "--out", "out/raw.jsonl")
    assert code == 0, err
    assert "predict: 4 reviews, 2 not predictable" in err
    results = [json.loads(line) for line in Path("out/raw.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["review_id"] for r in results] == ["n1", "reviews.jsonl:2", "n3", "n4"]
    assert results[1]["error"].startswith("malformed_json") and results[2]["error"].startswith("no_text")
    n1, n4 = results[0], results[3]
    assert n1["images"] == 1 and n1["images_not_read"] == [
        {"image": (raw / "images/missing.jpg").as_posix(), "reason": "missing or undecodable"}
    ]
    assert n1["aspects"]["battery"]["score"] == 9 and n1["aspects"]["camera"]["score"] == 9  # 8.5 rounds half up
    assert "score" not in n1["aspects"]["screen"] and n4["aspects"]["screen"]["score"] == 3 and n4["images"] == 0

    # the tokens are exactly those the clean and segment stages give the same records
    segmenter = predict.Segmenter(SegmentParams(**SEGMENT))
    records = predict.reviews_from_jsonl(raw / "reviews.jsonl", segmenter, predict.Preprocessing(32, 40_000_000))
    ours = {r.review_id: r.tokens for r in records if not r.error}
    pairs, _, _ = records_to_pairs(
        lines, raw, CleanParams(require_image=False, min_text_chars=1, dedupe_same_text=False)
    )
    staged = segment_frame(pairs, SegmentParams(**SEGMENT)).drop_duplicates("review_id")
    assert set(ours) == {"n1", "n4"}
    assert ours == {
        rid: list(tokens) for rid, tokens in zip(staged["review_id"], staged["tokens"], strict=False) if rid in ours
    }
    assert "清晰" in ours["n1"] and "OPPO" in ours["n4"] and not any("x.cn" in t for t in ours["n1"])


def test_explain_writes_attention_data_and_a_self_contained_page_per_review(workdir, capsys):
    code, _, err = run_predict(
        capsys, "--input", "data/segmented/test.parquet", "--out", "out/p.jsonl", "--explain", "out/explain"
    )
    assert code == 0, err
    test = read_frame("data/segmented/test.parquet").drop_duplicates("review_id")
    features = pd.read_parquet("data/features/images.parquet")
    usable = set(features.loc[features["ok"], "path"])
    for _, row in test.iterrows():
        data = json.loads(Path(f"out/explain/{row['review_id']}.json").read_text(encoding="utf-8"))
        read = [p for p in row["image_paths"] if p in usable][:5]
        assert data["words"] == list(row["tokens"]) and data["images"] == read
        assert list(data["aspects"]) == ASPECTS
        for aspect in data["aspects"].values():
            assert [h["hop"] for h in aspect["hops"]] == [1, 2]
            for hop in aspect["hops"]:
                assert len(hop["words"]) == len(row["tokens"]) and sum(hop["words"]) == pytest.approx(1, abs=1e-4)
                assert len(hop["images"]) == len(read)
                assert sum(hop["images"]) == pytest.approx(1.0 if read else 0.0, abs=1e-4)
        page = Path(f"out/explain/{row['review_id']}.html").read_text(encoding="utf-8")
        assert page.count("data:image/jpeg;base64,") == len(read) * 2 * 6
        assert all(word in page for word in row["tokens"]) and "true <b" in page
        assert 'src="http' not in page and "<script" not in page and "<link" not in page  # self-contained
        # the model was trained on the generated sample, and on no screen pair (the synthetic train split has none)
        assert page.count("trained on the generated offline sample") == 1
        assert (
            page.count("only 0 training pair(s) of this aspect") == 1
            and data["aspects"]["screen"]["few_training_pairs"]
        )
        assert data["notes"][0].startswith("warning: the model was trained on the generated offline sample")
    index = Path("out/explain/index.html").read_text(encoding="utf-8")
    assert all(f'href="{rid}.html"' in index for rid in test["review_id"])
    assert "trained on the generated offline sample" in index


def page_view(review_id: str) -> explain.ReviewView:
    aspect = explain.AspectView("battery", "电池续航", 7, {7: 1.0}, None, [[1.0]], [[]])
    return explain.ReviewView(review_id, ["好"], [False], 0, [], [], [], [aspect])


def test_no_review_id_can_take_another_pages_file(tmp_path):
    """`index` would overwrite index.html; ids that differ only in case would share a file on a case-insensitive
    disk; an id spelled like another id's changed name would take its page."""
    ids = ["index", "INDEX", "Index.html", "a b", "c0001", "C0001", "../up", "x" * 200]
    ids.append("a_b-" + hashlib.sha256(b"a b").hexdigest()[:16])  # what "a b" is renamed to
    names = [explain.write_review(page_view(i), tmp_path) for i in ids]
    assert len({n.lower() for n in names}) == len(ids) and "index" not in names and names[4] == "c0001"
    explain.write_index([explain.index_entry(page_view(i)) for i in ids], tmp_path, "pages")
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "<h1>pages</h1>" in index and all(f'href="{n}.html"' in index for n in names)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["index.html", *(f"{n}.{e}" for n in names for e in ("html", "json"))]
    )


def test_evaluate_writes_pages_of_right_and_wrong_test_reviews(workdir):
    predictions = pd.read_parquet("reports/predictions.parquet")
    pages = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in Path("reports/explain").glob("*.json")}
    assert pages and (Path("reports/explain") / "index.html").is_file()
    for _aspect, group in predictions.groupby("aspect"):
        right = group["score"] == group["predicted_score"]
        for outcome in (right, ~right):
            if outcome.any():
                assert str(group.loc[outcome, "review_id"].min()) in pages
    for review_id, page in pages.items():
        truth = predictions[predictions["review_id"] == review_id].set_index("aspect")
        assert set(page["aspects"]) == set(truth.index)
        for aspect, entry in page["aspects"].items():
            assert entry["score"] == truth.at[aspect, "score"]
            assert entry["predicted_score"] == truth.at[aspect, "predicted_score"]


def test_other_backbone_weights_are_refused(workdir, capsys, tmp_path, monkeypatch):
    image = ["--text", "手机 不错", "--image", "data/raw/images/full/img000.jpg"]
    code, out, err = run_predict(capsys, *image, "--weights", "random:seed=1")
    assert code == 2 and out == ""
    assert "trained on image features from ResNet-50 weights random:seed=0, but --weights gives random:seed=1" in err

    other = tmp_path / "other.pth"
    torch.save(backbone.random_backbone(5).model.state_dict(), other)
    code, _, err = run_predict(capsys, *image, "--weights", str(other))
    assert code == 2 and "weights random:seed=0, but --weights gives file:" in err
    code, _, err = run_predict(capsys, *image, "--weights", "imagenet")  # refused before any download
    assert code == 2 and "but --weights gives imagenet:IMAGENET1K_V2" in err
    code, _, err = run_predict(capsys, *image, "--weights", "random:seed=0")  # the same ones, named: accepted
    assert code == 0, err

    # a model whose features came from ImageNet weights that are not here: refused, never a random stand-in
    ckpt = torch.load("models/mimn.pt", weights_only=True)
    ckpt["features"] = {**ckpt["features"], "weights": "imagenet:IMAGENET1K_V2"}
    torch.save(ckpt, tmp_path / "imagenet.pt")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(backbone, "IMAGENET_URL", "http://127.0.0.1:9/resnet50.pth")
    code, _, err = run_predict(capsys, *image, "--model", str(tmp_path / "imagenet.pt"))
    assert code == 2 and "the images need ResNet-50 weights imagenet:IMAGENET1K_V2" in err and "RANDOM" not in err
    # text alone needs no backbone
    code, out, err = run_predict(capsys, "--text", "手机 不错", "--model", str(tmp_path / "imagenet.pt"))
    assert code == 0 and len(json.loads(out)["aspects"]) == 6


def test_a_checkpoint_without_the_weights_record_falls_back_loudly_or_refuses(workdir, capsys, tmp_path):
    ckpt = torch.load("models/mimn.pt", weights_only=True)
    del ckpt["features"]
    torch.save(ckpt, tmp_path / "old.pt")
    image = ["--text", "手机 不错", "--image", "data/raw/images/full/img000.jpg", "--model", str(tmp_path / "old.pt")]
    code, _, err = run_predict(capsys, *image)
    assert code == 0 and "does not record which backbone weights" in err and "random:seed=0" in err
    code, _, err = run_predict(capsys, *image, "--features", str(tmp_path / "absent.parquet"))
    assert code == 2 and "predict without images" in err


def test_bad_input_is_one_clear_error(workdir, capsys):
    code, _, err = run_predict(capsys, "--text", "手机", "--image", "nope.jpg")
    assert code == 2 and "error: --image nope.jpg: no such file" in err
    code, _, err = run_predict(capsys, "--text", "，。！")
    assert code == 2 and "no words left" in err
    code, _, err = run_predict(capsys, "--input", "absent.jsonl")
    assert code == 2 and "no such file" in err
    code, _, err = run_predict(capsys, "--text", "手机", "--model", "absent.pt")
    assert code == 2 and "absent.pt not found" in err


def test_a_model_trained_without_images_predicts_from_text_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    build_project(tmp_path, with_images=False)
    capsys.readouterr()
    code, out, err = run_predict(capsys, "--text", "手机 不错", "--image", "data/raw/images/full/img000.jpg")
    assert code == 0 and "trained without images" in err
    result = json.loads(out)
    assert result["images"] == 0 and len(result["aspects"]) == 6


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(chromium() is None, reason="headless Chromium is not installed (Debian: apt-get install chromium)")
def test_a_page_renders_in_headless_chromium_with_its_words_and_images(workdir, capsys, tmp_path):
    words = ["续航", "拍照", SENTIMENT_WORDS[7]]
    code, _, err = run_predict(
        capsys,
        "--text",
        " ".join(words),
        "--image",
        "data/raw/images/full/img000.jpg",
        "--image",
        "data/raw/images/full/img001.jpg",
        "--explain",
        str(tmp_path / "pages"),
    )
    assert code == 0, err
    page = (tmp_path / "pages/review.html").as_uri()
    browser = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run([*browser, "--dump-dom", page], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    read = json.loads((tmp_path / "pages/review.json").read_text(encoding="utf-8"))["words"]
    assert "续航" in read and all(f">{word}</span>" in dom.stdout for word in read) and "外观手感" in dom.stdout
    assert dom.stdout.count('<img src="data:image/jpeg;base64,') == 2 * 2 * 6
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [*browser, "--window-size=1000,900", f"--screenshot={shot}", page], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    blue = (b > 200) & (r < 50) & (g < 50)
    green = (g > 200) & (r < 50) & (b < 50)
    assert blue.sum() > 500 and green.sum() > 500, "the inline thumbnails were not drawn"
