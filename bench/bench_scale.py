"""The text stages on scaled copies of the public Multi-ZOL text: µs per pair and peak memory per stage.

    python bench/bench_scale.py [--scales 1,8,32] [--release DIR] [--out bench/results/scale.json]

Builds, for each scale N, a release of N copies of the public text (each copy with its own review ids and its
own text: a copy marker starts every review), runs `import` on it, removes the segmentation from the imported
text (so that `segment` runs jieba, as on crawled text) and runs `clean`, `split` and `segment`, each stage alone
in its own process, in a scratch folder. Per stage and scale: wall seconds, µs per pair and the peak resident
memory of the stage's process tree (sampled every 20 ms, the sum over the stage and its worker processes).
Per stage, the 1-minute load average before and after it and the cores other processes kept busy meanwhile
(bench/quiet.py: the machine's busy CPU less the stage's own); a stage during which others took more than
--max-other-cpu cores is flagged `loaded`, and so are its ratios: its times mean nothing. The
release defaults to $MULTIZOL_PUBLIC, else ../shared/data/multizol-public beside the repository; without it the
benchmark says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.quiet import MAX_OTHER_CORES, OtherLoad, run_commit  # noqa: E402

DEFAULT_RELEASE = Path(os.environ.get("MULTIZOL_PUBLIC", REPO.parent / "shared" / "data" / "multizol-public"))
SPLIT_FILES = ("zol_Train_jieba.txt", "zol_Dev_jieba.txt", "zol_Test_jieba.txt")
STAGES = ("import", "clean", "split", "segment")
STAGE_COMMANDS = {
    "import": ["pipeline.import_multizol", "--release", "release", "--out", "data/raw/multizol"],
    "clean": ["pipeline.clean", "--params", "params.yaml"],
    "split": ["pipeline.split", "--params", "params.yaml"],
    "segment": ["pipeline.segment", "--params", "params.yaml"],
}
SAMPLE_EVERY_S = 0.02


def read_pairs(release: Path) -> dict[str, list[list[str]]]:
    """The release's (text, images, aspect, score) line groups per split file."""
    pairs = {}
    for name in SPLIT_FILES:
        lines = (release / name).read_text(encoding="utf-8").splitlines()
        pairs[name] = [lines[i : i + 4] for i in range(0, len(lines) - len(lines) % 4, 4)]
    return pairs


def write_scaled_release(pairs: dict[str, list[list[str]]], copies: int, out: Path) -> int:
    """`copies` copies of every pair, each copy's text starting with its own marker; returns the pair count."""
    out.mkdir()
    written = 0
    for name, groups in pairs.items():
        with (out / name).open("w", encoding="utf-8", newline="\n") as handle:
            for copy in range(copies):
                for text, images, aspect, score in groups:
                    marker = f"副本{copy} " if copy else ""
                    handle.write(f"{marker}{text}\n{images}\n{aspect}\n{score}\n")
                    written += 1
    return written


def unsegment(raw: Path) -> None:
    """The imported reviews as crawled text: the spaces jieba put between words removed, `segmented` false."""
    path = raw / "reviews.jsonl"
    staged = path.with_suffix(".tmp")
    with path.open(encoding="utf-8") as source, staged.open("w", encoding="utf-8", newline="\n") as target:
        for line in source:
            record = json.loads(line)
            record["body"] = "".join(record["body"].split())
            record["segmented"] = False
            target.write(json.dumps(record, ensure_ascii=False) + "\n")
    staged.replace(path)


def write_params(work: Path) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["data"]["raw"] = "data/raw/multizol"
    params["clean"]["require_image"] = False
    params["split"]["method"] = "predefined"
    work.mkdir(parents=True)
    (work / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    (work / "data").mkdir(exist_ok=True)
    shutil.copytree(REPO / "data" / "lexicon", work / "data" / "lexicon")


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of a process and its descendants (those that vanish meanwhile count 0)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_measured(stage: str, work: Path) -> dict:
    """Run one stage in `work`, sampling the RSS of its process tree; a failed stage raises with its output."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", *STAGE_COMMANDS[stage]],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    watched, peak = psutil.Process(child.pid), 0
    while child.poll() is None:
        try:
            peak = max(peak, tree_rss(watched))
        except psutil.Error:
            pass
        time.sleep(SAMPLE_EVERY_S)
    seconds = time.perf_counter() - started
    output = child.stdout.read() if child.stdout else ""
    if child.returncode:
        raise RuntimeError(f"{stage} exited {child.returncode}:\n{output}")
    return {"seconds": round(seconds, 3), "peak_rss_mb": round(peak / 2**20, 1), "summary": output.strip()[-300:]}


def measure_scale(
    pairs: dict[str, list[list[str]]], copies: int, scratch: Path, measured: tuple[str, ...], max_other_cpu: float
) -> dict:
    """The stages on `copies` copies of the release, in a fresh folder under `scratch`: each stage runs (its
    input needs the ones before it), those in `measured` are reported, each with the load it ran under
    (bench/quiet.py) and `loaded` when other processes kept more than `max_other_cpu` cores busy."""
    work = scratch / f"x{copies}"
    write_params(work)
    count = write_scaled_release(pairs, copies, work / "release")
    stages = {}
    for stage in STAGES[: max(STAGES.index(s) for s in measured) + 1]:
        with OtherLoad(max_other_cpu) as load:
            result = run_measured(stage, work)
        if stage == "import":
            unsegment(work / "data" / "raw" / "multizol")
        if stage in measured:
            result["us_per_pair"] = round(result["seconds"] / count * 1e6, 1)
            result.update(load.record())
            stages[stage] = result
    shutil.rmtree(work)
    return {"copies": copies, "pairs": count, **stages}


def ratios(results: list[dict]) -> dict:
    """Per stage: peak RSS and µs per pair at the largest scale over those at the one before it (8× and 32× by
    default: memory and time per pair that stay put as the input grows); {} for fewer than two scales."""
    if len(results) < 2:
        return {}
    a, b = sorted(results, key=lambda r: r["copies"])[-2:]
    return {
        "of": [a["copies"], b["copies"]],
        **{
            stage: {
                "rss": round(b[stage]["peak_rss_mb"] / a[stage]["peak_rss_mb"], 2),
                "time_per_pair": round(b[stage]["us_per_pair"] / a[stage]["us_per_pair"], 2),
                "loaded": a[stage]["loaded"] or b[stage]["loaded"],
            }
            for stage in STAGES
            if stage in a and stage in b
        },
    }


def table(results: list[dict]) -> str:
    scales = " / ".join(f"{r['copies']}×" for r in results)
    lines = [f"| stage | µs per pair at {scales} | peak RSS (MB) at {scales} |", "|---|---|---|"]
    for stage in (s for s in STAGES if s in results[0]):
        times = " / ".join(f"{r[stage]['us_per_pair']:.0f}" for r in results)
        memory = " / ".join(f"{r[stage]['peak_rss_mb']:.0f}" for r in results)
        lines.append(f"| {stage} | {times} | {memory} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/bench_scale.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scales", default="1,8,32", help="copies of the public text (default: %(default)s)")
    parser.add_argument("--release", type=Path, default=DEFAULT_RELEASE, help="the public Multi-ZOL text")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "scale.json")
    parser.add_argument(
        "--stages", default=",".join(STAGES), help="stages to report, of %(default)s (the earlier ones run too)"
    )
    parser.add_argument(
        "--max-other-cpu",
        type=float,
        default=MAX_OTHER_CORES,
        help="flag a stage when other processes kept more cores than this busy meanwhile (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if not all((args.release / name).is_file() for name in SPLIT_FILES):
        print(f"bench scale: skipped, no Multi-ZOL text at {args.release} (set MULTIZOL_PUBLIC)")
        return 0
    measured = tuple(s for s in args.stages.split(",") if s)
    if not measured or set(measured) - set(STAGES):
        parser.error(f"--stages takes some of {','.join(STAGES)}, got {args.stages!r}")
    pairs = read_pairs(args.release)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        for copies in (int(s) for s in args.scales.split(",")):
            result = measure_scale(pairs, copies, Path(scratch), measured, args.max_other_cpu)
            result["loaded"] = any(result[stage]["loaded"] for stage in measured)
            results.append(result)
            others = max(result[stage]["other_cpu_cores"] for stage in measured)
            print(f"{copies}×: {result['pairs']} pairs, other processes up to {others:.2f} cores", flush=True)
    report = {
        "machine": f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB",
        "commit": run_commit(),
        "results": results,
        "ratios": ratios(results),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(table(results))
    print(json.dumps(report["ratios"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
