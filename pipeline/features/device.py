"""Where and how the features are computed: the precision that runs on the chosen device, the CPU threads and the
decode processes (`--num-workers`, or the environment's ZOL_FEATURES_WORKERS; default auto)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from common.errors import UserError
from common.stage import count_argument

# /proc/cpuinfo flags of native bf16 arithmetic: AVX512-BF16 (Cooper Lake, Zen 4+), AMX (Sapphire Rapids+),
# and Arm's BF16 extension; without one of them bf16 is emulated and slower than fp32
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
# decode processes on CPU for --num-workers auto; 0 (decode in the main process between batches) measured
# fastest on 2 cores, where any worker takes cycles from the convolutions (bench/results/features.json)
AUTO_CPU_WORKERS = 0
WORKERS_ENV = "ZOL_FEATURES_WORKERS"


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo ("flags" on x86, "Features" on Arm); empty where unknown."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:  # not Linux
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def cpu_has_native_bf16(flags: set[str] | None = None) -> bool:
    """Whether this CPU computes bf16 in hardware (oneDNN then runs bf16 convolutions faster than fp32)."""
    flags = cpu_flags() if flags is None else flags
    return torch.backends.mkldnn.is_available() and bool(flags & BF16_CPU_FLAGS)


def resolve_precision(requested: str, device: torch.device) -> str:
    """features.precision (auto | fp32 | bf16) -> what runs: fp32 | bf16-autocast | fp16-autocast.

    auto: bf16 autocast on CPUs with native bf16 (x1.2 over fp32 at the same batch on a Zen 4 CPU, cosine
    >= 0.999 to the fp32 features), fp32 on other CPUs; on GPUs bf16 where supported, else fp16."""
    if requested == "fp32":
        return "fp32"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16-autocast"
        if requested == "bf16":
            raise UserError("params.yaml: 'features.precision' is bf16 but this GPU has no bf16; set auto or fp32")
        return "fp16-autocast"
    if requested == "bf16" or cpu_has_native_bf16():
        if not cpu_has_native_bf16():
            print(
                "note: features.precision=bf16 on a CPU without native bf16 (avx512_bf16/amx): it is emulated, "
                "expect it slower than fp32",
                file=sys.stderr,
            )
        return "bf16-autocast"
    return "fp32"


def available_cores() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()  # macOS: no affinity
    return cores or 1


def local_processes() -> int:
    """Processes sharing this machine's cores: torchrun's LOCAL_WORLD_SIZE, else 1."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


# --num-workers / ZOL_FEATURES_WORKERS: auto or a count >= 0
worker_count = count_argument("auto or a count >= 0", words=("auto",))


def resolve_num_workers(requested: int | str, device: torch.device) -> int:
    """--num-workers: auto = the measured best on CPU (decoding in this process: the convolutions
    already keep every core busy, bench/bench_features.py), on a GPU one decode process per core up to 8."""
    if requested != "auto":
        return int(requested)
    if device.type == "cuda":
        return min(available_cores(), 8)
    return AUTO_CPU_WORKERS
