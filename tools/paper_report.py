"""reports/paper_tables.md: the grid's rows beside the paper's figures, what differs from the paper's setting, and
a verdict on each ranking the paper claims.

A claim "a ranks above b" (MIMN above each baseline, the hop counts in the paper's order, MIMN above each variant)
is judged per metric on the means over the seeds: supported when a's mean exceeds b's by more than the two
rows' sample standard deviations added (|mean_a - mean_b| > std_a + std_b), contradicted when b's mean exceeds
a's by that much, not resolved otherwise or when a row has fewer than two seeds. With three seeds a Welch test
has two to four degrees of freedom and is unstable; the spread rule is plain to check by eye in the table.
"""

from __future__ import annotations

import itertools
import math
import statistics

from model.provenance import MULTIZOL, SAMPLE, data_source
from tools.paper_grid import (
    DEFAULTS,
    DEFAULTS_LABEL,
    METRICS,
    PAPER,
    PAPER_TABLE2,
    PAPER_TABLE3,
    PAPER_TABLE4,
    TABLE_TITLES,
    Plan,
    latest_by_run,
)

SUPPORTED, CONTRADICTED, NOT_RESOLVED = "supported", "contradicted", "not resolved"
CLAIM_METRICS = (("accuracy", "accuracy"), ("weighted_f1", "weighted-F1"))  # the paper's two columns


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def aggregate(plan: Plan, results: list[dict]) -> list[dict]:
    """Per plan row: the paper's figures and ours (percent), mean and sample std over the seeds that ran."""
    done = latest_by_run(results, plan)
    table = []
    for row in plan.rows:
        seeds = [seed for seed in plan.seeds if plan.run(row.setting, row.profile, seed) in done]
        runs = [done[plan.run(row.setting, row.profile, seed)] for seed in seeds]
        ours = {m: _mean_std([100 * r["metrics"][m] for r in runs]) if runs else None for m in METRICS}
        table.append(
            {
                "table": row.table,
                "label": row.label,
                "setting": row.setting,
                "profile": row.profile,
                "paper_accuracy": row.paper_accuracy,
                "paper_f1": row.paper_f1,
                "runs": len(runs),
                "seeds": seeds,
                **ours,
            }
        )
    return table


# ---- the paper's claims ----------------------------------------------------------------------------------


def paper_claims() -> list[tuple[int, str, str]]:
    """(table, higher row, lower row) for every ranking the paper's tables state: MIMN above each baseline; the
    hop counts rising to 3 and falling after it, by the paper's accuracies; MIMN above each variant."""
    mimn = PAPER_TABLE2["mimn"][0]
    claims = [(2, mimn, label) for key, (label, *_) in PAPER_TABLE2.items() if key != "mimn"]
    hops = sorted(PAPER_TABLE3)
    for low, high in itertools.pairwise(hops):
        a, b = PAPER_TABLE3[low], PAPER_TABLE3[high]
        claims.append((3, a[0], b[0]) if a[1] > b[1] else (3, b[0], a[0]))
    claims += [(4, mimn, label) for key, (label, *_) in PAPER_TABLE4.items() if key != "mimn"]
    return claims


def verdict(higher: dict, lower: dict, metric: str) -> tuple[str, str]:
    """(verdict, why) of "higher ranks above lower" on one metric of two aggregated rows."""
    a, b = higher.get(metric), lower.get(metric)
    if a is None or b is None or a[1] is None or b[1] is None:
        runs = min(higher["runs"], lower["runs"])
        return NOT_RESOLVED, f"{runs} seed(s) in a row, 2 needed"
    diff, spread = a[0] - b[0], a[1] + b[1]
    why = f"Δ {diff:+.2f}, spread {spread:.2f}"
    if abs(diff) <= spread:
        return NOT_RESOLVED, why
    return (SUPPORTED if diff > 0 else CONTRADICTED), why


def claim_lines(table: list[dict]) -> list[str]:
    """One line per claim whose two rows are in the report: the verdict on accuracy and on weighted-F1."""
    by_key = {(r["table"], r["label"]): r for r in table if r["profile"] == PAPER}
    lines = []
    for number, high, low in paper_claims():
        if (number, high) not in by_key or (number, low) not in by_key:
            continue
        cells = []
        for metric, name in CLAIM_METRICS:
            result, why = verdict(by_key[(number, high)], by_key[(number, low)], metric)
            cells.append(f"{name}: **{result}** ({why})")
        lines.append(f"- Table {number}: {high} above {low} — " + "; ".join(cells))
    return lines


# ---- what differs -----------------------------------------------------------------------------------------


def _describe_data(params: dict) -> str:
    data_raw = str((params.get("data") or {}).get("raw", ""))
    sample, source = params.get("sample") or {}, data_source(params)  # the rule train records in the checkpoint
    if source == MULTIZOL:
        return f"the Multi-ZOL release imported into `{data_raw}`"
    if source == SAMPLE:
        return (
            f"the generated offline sample (`{sample.get('out')}`: {sample.get('products')} products × "
            f"{sample.get('reviews_per_product')} reviews, synthetic text and photos), not Multi-ZOL"
        )
    return f"a crawl of zol.com.cn in `{data_raw}`, not Multi-ZOL"


def _sizes_text(sizes: dict) -> str:
    if sizes.get("test_pairs") is None:
        return ""
    return (
        f"; {sizes.get('train_pairs')} / {sizes.get('dev_pairs')} / {sizes.get('test_pairs')} train / dev / "
        f"test pairs, {sizes.get('test_pairs_without_image')} test pairs without a usable image (their image "
        "memory is masked)"
    )


def _training_text(params: dict, max_epochs: int) -> str:
    train, model = params.get("train") or {}, params.get("model") or {}
    optimiser = "Adam" if not train.get("weight_decay") else f"AdamW (weight decay {train.get('weight_decay')})"
    loss = "cross-entropy" if train.get("loss") == "ce" else f"`train.loss: {train.get('loss')}`"
    if train.get("label_smoothing"):
        loss += f" with label smoothing {train.get('label_smoothing')}"
    weights = train.get("class_weights")
    loss += " (no class weights)" if weights == "none" else f" with class weights `{weights}`"
    return (
        f"{loss}, {optimiser}, lr {train.get('lr')} ({train.get('lr_schedule')}), batch {train.get('batch_size')}, "
        f"dropout {model.get('dropout')}, at most {max_epochs} epochs, the epoch with the best dev "
        f"`{train.get('select_metric')}` kept (patience {train.get('patience')})"
        + (", batches of similar lengths (`train.bucket_by_length`)" if train.get("bucket_by_length") else "")
    )


def _split_text(split: dict) -> str:
    if split.get("method") == "predefined":
        return "the split that came with the data (`split.method: predefined`)"
    return (
        f"{split.get('train')}/{split.get('dev')}/{split.get('test')} random by "
        f"{split.get('group_by')} (seed {split.get('seed')})"
    )


def _images_text(features: dict, model: dict, clean: dict) -> str:
    weights = features.get("weights")
    return (
        f"ResNet-50, `features.weights: {weights}`"
        + (
            " (random weights when ImageNet's are not at hand: see reports/features_detail.json)"
            if weights == "auto"
            else ""
        )
        + f", up to {model.get('max_images')} per review; reviews without an image "
        + ("dropped" if clean.get("require_image") else "kept, their image memory masked")
    )


def _vectors_text(embeddings: dict, model: dict) -> str:
    lr_scale = embeddings.get("lr_scale")
    return (
        f"`embeddings.source: {embeddings.get('source')}`"
        + (" (skip-gram trained on the training split only)" if embeddings.get("source") == "sgns" else "")
        + f", {model.get('embed_dim')}-d, "
        + ("frozen" if not lr_scale else "fine-tuned" + ("" if lr_scale == 1 else f" at {lr_scale} × the lr"))
    )


def differences(params: dict, plan: Plan, sizes: dict) -> list[tuple[str, str, str]]:
    """(what, the paper, the paper's rows here) for every setting that differs or may differ; `params` are the
    paper rows' params (params.yaml with paper.as_paper on top)."""
    model, train = params.get("model") or {}, params.get("train") or {}
    return [
        (
            "data",
            "Multi-ZOL: 5,288 multimodal reviews, 28,469 aspect–review pairs",
            _describe_data(params) + _sizes_text(sizes),
        ),
        ("split", "random 80/10/10", _split_text(params.get("split") or {})),
        (
            "images",
            "ResNet-50 pre-trained on ImageNet, up to 5 per review",
            _images_text(params.get("features") or {}, model, params.get("clean") or {}),
        ),
        (
            "word vectors",
            "300-d SGNS pre-trained on Baidu Encyclopedia, fine-tuned at the model's learning rate",
            _vectors_text(params.get("embeddings") or {}, model),
        ),
        ("LSTM size", "100 hidden units", f"{model.get('hidden_dim')} hidden units (`model.hidden_dim`)"),
        ("classes", "10 (one per score; the public code maps scores to 8)", f"{train.get('classes')}"),
        (
            "training",
            "cross-entropy, Adam, lr 0.005, batch 128, dropout 0.5, stop when the dev loss stops falling "
            'for "several" epochs',
            _training_text(params, plan.max_epochs),
        ),
        (
            "MIMN's wide path",
            "none",
            "`model.word_evidence: true`: MIMN adds the linear baseline's word evidence "
            "(an extension; the baselines do not have it)"
            if model.get("word_evidence")
            else "none (`model.word_evidence: false`, the paper's MIMN)",
        ),
        (
            "attention score",
            "tanh(w·[m, q] + b) as printed",
            f"`model.attention_score: {model.get('attention_score')}` "
            "for MIMN and every baseline's MemoryAttention (IAN keeps its bilinear score)",
        ),
        (
            "runs per row",
            "one (seed not stated)",
            f"{len(plan.seeds)} seeds ({', '.join(map(str, plan.seeds))}) for "
            "every row: mean ± sample standard deviation",
        ),
        (
            "F1",
            "\"macro-F1\", computed in the public code with average='weighted'",
            "weighted-F1 (compare with the paper's column) and the true macro-F1, both reported",
        ),
    ]


# ---- the report -------------------------------------------------------------------------------------------


def _cell(value: tuple[float, float | None] | None) -> str:
    if value is None:
        return "—"
    mean, std = value
    return f"{mean:.2f}" if std is None or math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def _figure(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _profiles_text(plan: Plan, defaults: dict) -> list[str]:
    overrides = ", ".join(
        f"`{key}: {str(value).lower() if isinstance(value, bool) else value}`" for key, value in plan.as_paper
    )
    lines = ["", f"Every paper row trains with params.yaml and `paper.as_paper` on top ({overrides or 'nothing'})."]
    if any(row.profile == DEFAULTS for row in plan.rows):
        lines += [
            "",
            f'The row "{DEFAULTS_LABEL}" (not in the paper) is MIMN as params.yaml sets it, the project\'s '
            "tuned default: "
            + _training_text(defaults, plan.max_epochs)
            + "; wide path "
            + ("on (`model.word_evidence: true`)" if (defaults.get("model") or {}).get("word_evidence") else "off")
            + ".",
        ]
    return lines


def _table_lines(plan: Plan, table: list[dict], number: int) -> list[str]:
    lines = [
        "",
        f"## {TABLE_TITLES[number]}",
        "",
        '| method | paper accuracy | paper "macro-F1" (weighted) | accuracy | weighted-F1 | macro-F1 | seeds |',
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in (r for r in table if r["table"] == number):
        lines.append(
            f"| {r['label']} | {_figure(r['paper_accuracy'])} | {_figure(r['paper_f1'])} | "
            f"{_cell(r['accuracy'])} | {_cell(r['weighted_f1'])} | {_cell(r['macro_f1'])} | "
            f"{r['runs']}/{len(plan.seeds)} |"
        )
    return lines


def _claims_lines(table: list[dict]) -> list[str]:
    claims = claim_lines(table)
    if not claims:
        return []
    return [
        "",
        "## Claims",
        "",
        "Each ranking the paper's tables state, on the paper's two columns. Rule: **supported** when the "
        "first row's mean exceeds the second's by more than their two standard deviations added "
        "(|Δ| > std_a + std_b over the seeds), **contradicted** when the second's exceeds the first's by "
        "that much, **not resolved** otherwise (or with fewer than two seeds in a row).",
        "",
        *claims,
    ]


def render(
    plan: Plan,
    table: list[dict],
    paper_params: dict,
    defaults_params: dict,
    sizes: dict,
    commit: str,
    failed: int,
    skipped: list[str] = (),
) -> str:
    lines = [
        "# The paper's Tables 2–4, reproduced",
        "",
        f"Written by `python -m tools.paper` from the DVC experiments of commit `{commit}` (`dvc exp show`). "
        "Test-split figures in percent; ours are the mean ± sample standard deviation over the seeds that ran. "
        "The paper's \"macro-F1\" is a weighted F1 in its public code (sklearn `average='weighted'`): compare it "
        "with the weighted-F1 column; our macro-F1 is the unweighted mean over the classes present.",
        *_profiles_text(plan, defaults_params),
        "",
        "## What differs from the paper (its rows here)",
        "",
        "| | paper | here |",
        "|---|---|---|",
        *[f"| {what} | {paper} | {here} |" for what, paper, here in differences(paper_params, plan, sizes)],
    ]
    if failed:
        lines += [
            "",
            f"**{failed} experiment(s) of the grid have no test metrics** (failed, interrupted or not run: "
            "`dvc exp show`; `make paper` runs them again); their rows average fewer seeds.",
        ]
    if skipped:
        lines += [
            "",
            f"{len(skipped)} experiment(s) left out, their grid params unreadable: "
            + "; ".join(f"`{why}`" for why in skipped)
            + ".",
        ]
    for number in sorted({r["table"] for r in table}):
        lines += _table_lines(plan, table, number)
    lines += _claims_lines(table)
    lines += [
        "",
        "Text-only rows (LSTM, ATAE-LSTM, MemNet, IAN, RAM) read no image, as in the paper; model "
        "equations and every choice made: docs/baselines.md. Tables 3–4 of the paper come out of its PDF "
        "with the two accuracy columns interleaved; the transcription is explained in tools/paper_grid.py.",
        "",
    ]
    return "\n".join(lines)
