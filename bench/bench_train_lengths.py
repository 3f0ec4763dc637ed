"""Benchmark: MIMN training pairs/s on real review lengths, ours against the reference code's way, in one run.

Text lengths are drawn from the Multi-ZOL public part's training file (`../shared/data/multizol-public`, or
`$MULTIZOL_PUBLIC`) when present, else from the histogram recorded from it in `bench/data/`. Both methods train
the same MIMN (the paper's sizes: 300-d words, 100 units, 3 hops, K = 5 image slots, batch 128, Adam) on the same
pairs, with the same parameters; they differ in the data path and in how the same functions are computed:

- reference: as the public reference code feeds and computes its model: random batches, every text padded to
  L = 320, packed (length-aware) LSTMs, every attention score computed on the concatenation [m_i; q] (the query
  copied to every position), torch's Bernoulli dropout, Adam's step parameter by parameter;
- ours: `train.bucket_by_length` batches (similar lengths together, batch order shuffled, model/sampler.py),
  each batch padded only to its longest text, the LSTMs unpacked on CPU (they never see padding either way), the
  attention's memory term computed once per memory for all hops (layers.memory_keys), the dropout mask drawn from
  uniform floats (layers.Dropout), the fused optimizer step (as model/training.py).

Each method runs in its own process (its peak RSS is its own) over N, 2N and 4N pairs (`--scales`), one epoch each
after a warm-up step, `--rounds` times per size with the methods alternating; the speed-up reported is the median of
the rounds' ratios (this kind of machine's speed drifts by ±15 % between runs). Results:
bench/results/train_lengths.json.

    .venv/bin/python bench/bench_train_lengths.py [--pairs 384] [--scales 1,2,4] [--rounds 1] [--threads 0]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.quiet import measured_child, run_commit  # noqa: E402

RESULTS = REPO / "bench" / "results" / "train_lengths.json"
RECORDED = REPO / "bench" / "data" / "multizol_train_lengths.json"
VOCAB, BATCH, CAP, IMAGES = 20_000, 128, 320, 5


def real_lengths() -> tuple[list[int], str]:
    """Text lengths of the public training pairs (words, capped at 320), and where they came from."""
    public = (
        Path(os.environ.get("MULTIZOL_PUBLIC", REPO.parent / "shared/data/multizol-public")) / "zol_Train_jieba.txt"
    )
    if public.is_file():
        lines = public.read_text(encoding="utf-8").split("\n")
        return [min(len(lines[i].split()), CAP) or 1 for i in range(0, len(lines) - 3, 4)], str(public)
    counts = json.loads(RECORDED.read_text(encoding="utf-8"))["counts"]
    return [max(int(k), 1) for k, v in counts.items() for _ in range(v)], str(RECORDED)


def synthetic_pairs(pairs: int, g):
    """`pairs` random pairs whose text lengths are drawn from the real ones: (lengths, texts, aspects, images,
    targets)."""
    import torch

    lengths, _ = real_lengths()
    picked = [lengths[int(i)] for i in torch.randint(len(lengths), (pairs,), generator=g)]
    texts = [torch.randint(2, VOCAB, (n,), generator=g) for n in picked]
    aspects = [torch.randint(2, VOCAB, (2,), generator=g) for _ in picked]
    images = [torch.randn(int(k), 2048, generator=g) for k in torch.randint(0, IMAGES + 1, (pairs,), generator=g)]
    targets = torch.randint(0, 8, (pairs,), generator=g)
    return picked, texts, aspects, images, targets


def concatenated_scores(attention, memory, query, keys=None):
    """MemoryAttention.scores as the reference code computes it: the joint layer on [m_i; q] at every position."""
    import torch

    joint = torch.cat([memory, query.unsqueeze(1).expand(-1, memory.size(1), -1)], dim=-1)
    if attention.score_kind == "linear":
        return torch.tanh(attention.score(joint)).squeeze(-1)
    return attention.score(torch.tanh(attention.hidden(joint))).squeeze(-1)


def reference_form(network) -> None:
    """Make `network` (a MIMN) compute as the reference code does, with the same parameters and the same
    function: packed LSTMs, each attention's score on the concatenation, torch's own dropout."""
    import collections
    import types

    import torch

    from model.layers import Dropout, MemoryAttention

    network._keys = lambda *_: collections.defaultdict(type(None))  # no shared memory term: each from scratch
    for module in network.modules():
        if hasattr(module, "packed"):
            module.packed = True
        if isinstance(module, MemoryAttention):
            module.scores = types.MethodType(concatenated_scores, module)
        if isinstance(module, Dropout):
            module.forward = types.MethodType(torch.nn.Dropout.forward, module)


def method_batches(method: str, model, picked: list[int], g) -> list[list[int]]:
    """reference: the model in its reference form and plain shuffled batches; else length-bucketed batches."""
    import torch

    from model.sampler import LengthBucketSampler

    if method != "reference":
        return list(LengthBucketSampler(picked, BATCH, seed=0))
    reference_form(model)
    order = torch.randperm(len(picked), generator=g).tolist()
    return [order[i : i + BATCH] for i in range(0, len(picked), BATCH)]


def batch_maker(method: str, texts, aspects, images, targets):
    import torch

    from model.data import batch_inputs

    def make(batch: list[int]):
        text = [texts[i] for i in batch]
        if method == "reference":  # every text padded to L: a dummy row of length 320 sets the padded width
            inputs = batch_inputs(
                text + [torch.zeros(CAP, dtype=torch.long)],
                [aspects[i] for i in batch] + [aspects[0]],
                [images[i] for i in batch] + [images[0][:0]],
                2048,
            )
            inputs = {k: v[:-1] for k, v in inputs.items()}
        else:
            inputs = batch_inputs(text, [aspects[i] for i in batch], [images[i] for i in batch], 2048)
        return inputs, targets[batch]

    return make


def run_method(method: str, pairs: int, threads: int) -> dict:
    """Time one epoch of `pairs` pairs with one method (called in a child process)."""
    import torch

    from model.config import MIMNConfig
    from model.mimn import MIMN

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    picked, texts, aspects, images, targets = synthetic_pairs(pairs, g)
    model = MIMN(MIMNConfig(vocab_size=VOCAB, num_classes=8, embed_dim=300, hidden_dim=100))
    batches = method_batches(method, model, picked, g)
    make = batch_maker(method, texts, aspects, images, targets)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=method != "reference")
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()

    def step(batch: list[int]) -> None:
        inputs, y = make(batch)
        optimizer.zero_grad()
        loss_fn(model(**inputs), y).backward()
        optimizer.step()

    step(batches[0])  # warm-up (allocations, thread pools)
    tick = time.perf_counter()
    for batch in batches:
        step(batch)
    seconds = time.perf_counter() - tick
    padded = sum(CAP if method == "reference" else max(picked[i] for i in b) for b in batches for _ in b)
    return {
        "method": method,
        "pairs": pairs,
        "seconds": round(seconds, 2),
        "pairs_per_second": round(pairs / seconds, 1),
        "padding_fraction": round(1 - sum(picked) / padded, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def measure(method: str, pairs: int, threads: int) -> dict:
    """One epoch of `pairs` pairs with `method` in a child process (its peak RSS its own), with the others' load."""
    return measured_child([sys.executable, __file__, "--threads", str(threads), "--child", method, str(pairs)])


def speedups(runs: list[dict]) -> tuple[dict[str, float], dict[str, list[float]]]:
    """(median, per round) of ours / reference pairs/s at each epoch size; a round is one run of each method."""
    per_round: dict[str, list[float]] = {}
    for pairs in sorted({r["pairs"] for r in runs}):
        rounds = sorted({r["round"] for r in runs if r["pairs"] == pairs})
        rate = {(r["method"], r["round"]): r["pairs_per_second"] for r in runs if r["pairs"] == pairs}
        per_round[str(pairs)] = [round(rate["ours", i] / rate["reference", i], 2) for i in rounds]
    return {k: round(statistics.median(v), 2) for k, v in per_round.items()}, per_round


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=384, help="N: pairs of the smallest epoch")
    parser.add_argument("--scales", default="1,2,4", help="epochs of N times these pairs (default 1,2,4)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="runs of each method per epoch size, alternating (median reported)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "PAIRS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    threads = args.threads or os.cpu_count() or 1
    if args.child:
        print(json.dumps(run_method(args.child[0], int(args.child[1]), threads)))
        return 0
    lengths, source = real_lengths()
    runs = []
    for scale in (int(s) for s in args.scales.split(",")):
        for round_ in range(args.rounds):
            for method in ("reference", "ours"):
                runs.append({**measure(method, args.pairs * scale, threads), "round": round_})
                print(runs[-1], flush=True)
    medians, per_round = speedups(runs)
    sorted_lengths = sorted(lengths)
    results = {
        "lengths_from": source,
        "length_median": sorted_lengths[len(lengths) // 2],
        "length_mean": round(sum(lengths) / len(lengths), 1),
        "share_at_cap": round(sum(1 for n in lengths if n >= CAP) / len(lengths), 3),
        "threads": threads,
        "batch_size": BATCH,
        "runs": runs,
        "speedup_ours_over_reference": medians,
        "speedup_per_round": per_round,
        "loaded": any(r["load"]["loaded"] for r in runs),
        "commit": run_commit(),
    }
    print("speed-up (ours / reference), median over rounds, by pairs per epoch:", medians)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
