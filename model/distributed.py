"""Multi-process training with torchrun and DistributedDataParallel (DDP).

    torchrun --nproc-per-node 2 -m model.train     # or params.yaml train.nproc: 2 (dvc exp run -S train.nproc=2)
    torchrun --nnodes 2 --node-rank R --rdzv-endpoint HOST:29500 --nproc-per-node 4 -m model.train   # several machines

torchrun starts the processes and sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR/PORT; this
module only reads them. Without them (a plain `python -m model.train`) the world size is 1 and every helper
here is the identity: no process group, no DDP wrapper, no collective, the single-process path unchanged.

How a run is split (world size W > 1):
- `train.batch_size` stays the global batch: every rank draws the same seeded length-bucketed batches and takes
  its share of each (`ShardedBatchSampler`: rank r gets batch[r::W]), so every rank runs the same number of
  steps and DDP's gradient average is the whole batch's (exact when the shares are equal and the loss an
  unweighted mean; with class weights a per-share weighted mean, averaged). `nproc` is therefore a speed knob,
  not a new batch size; results differ from a single process only by float summation order and dropout masks.
- Gloo on CPU, NCCL on GPUs (one GPU per process: cuda:LOCAL_RANK).
- Every rank evaluates the whole dev set with identical weights; the monitored dev score is broadcast from rank
  0 so the best epoch and early stopping are decided once, identically on every rank.
- Training metrics (loss, accuracy, F1, pairs/s) are over every rank's pairs (an all-gather per epoch).
- Only rank 0 writes the checkpoint, the curve and metrics/train.json, and prints.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Sampler

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
DROPOUT_SEED_STRIDE = 10_007  # rank r's dropout generator: seed + r * stride (rank 0 keeps the seed itself)


def launched() -> bool:
    """True inside a process started by torchrun (or any launcher setting the env:// variables)."""
    return all(v in os.environ for v in ENV_VARS)


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """The process that writes outputs and prints: rank 0, or the only process."""
    return rank() == 0


def setup(device: torch.device, num_threads: int) -> torch.device:
    """Join the process group when started by torchrun with WORLD_SIZE > 1; returns this process's device.

    With num_threads 0 (all cores: --threads / ZOL_TORCH_THREADS unset, model/runtime.py) the machine's cores are
    divided between its processes."""
    if not launched() or int(os.environ["WORLD_SIZE"]) == 1 or dist.is_initialized():
        return device
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None
    )
    if num_threads == 0:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size()))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    return device


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def relaunch(nproc: int, module: str, argv: Sequence[str]) -> int:
    """`python -m module argv` as `nproc` processes on this machine, through torchrun; its exit status."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        module,
        *argv,
    ]
    return subprocess.run(command, check=False).returncode


class ShardedBatchSampler(Sampler[list[int]]):
    """Rank r's share, batch[r::W], of every batch the wrapped (seeded) batch sampler yields.

    Every rank wraps an identically seeded sampler, so all see the same batches each epoch and the shares are
    disjoint and together exactly the batch. A batch smaller than W (only ever the last one) gives the ranks
    left without a pair a repeat of one of its pairs, so that every rank takes the same number of steps."""

    def __init__(self, batches: Sampler[list[int]], rank: int, world: int) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank must be in [0, {world}), got {rank}")
        self.batches, self.rank, self.world = batches, rank, world

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            share = list(batch[self.rank :: self.world])
            yield share or [batch[self.rank % len(batch)]]


def shard_loader(loader: DataLoader) -> DataLoader:
    """A training loader that yields this rank's share of each of `loader`'s batches; `loader` with one process."""
    if world_size() == 1:
        return loader
    return DataLoader(
        loader.dataset,
        batch_sampler=ShardedBatchSampler(loader.batch_sampler, rank(), world_size()),
        collate_fn=loader.collate_fn,
        num_workers=loader.num_workers,
    )


def wrap_model(model: nn.Module, device: torch.device, seed: int) -> nn.Module:
    """DDP around the model (rank 0's weights are copied to every rank), or the model itself with one process.

    Each rank reseeds torch's generator so that its dropout masks differ from the other ranks'."""
    if world_size() == 1:
        return model
    model.to(device)
    torch.manual_seed(seed + rank() * DROPOUT_SEED_STRIDE)
    # find_unused_parameters: a variant or a batch may leave some parameters without a gradient
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
    )


def unwrap_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A DDP model's state dict (keys `module.*`) as the plain model's; unchanged otherwise."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return state


def gather_epoch(loss_sum: float, y_pred: np.ndarray, y_true: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """An epoch's summed loss and predictions over every rank (rank order); unchanged with one process."""
    if world_size() == 1:
        return loss_sum, y_pred, y_true
    parts: list = [None] * world_size()
    dist.all_gather_object(parts, (loss_sum, y_pred, y_true))
    return (
        float(sum(p[0] for p in parts)),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def agree(score: float) -> float:
    """Rank 0's value of a (dev) score on every rank, so that decisions taken from it are the same everywhere."""
    if world_size() == 1:
        return score
    box = [score]
    dist.broadcast_object_list(box, src=0)
    return float(box[0])
