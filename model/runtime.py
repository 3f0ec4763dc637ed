"""How the train and evaluate stages run torch: seeds, CPU threads and deterministic kernels.

The number of CPU threads changes how fast, not what comes out, so it is no param of params.yaml (changing it
re-runs nothing): `--threads N` on the command line, else the environment variable ZOL_TORCH_THREADS, else 0,
all cores (divided between the processes when train.nproc > 1).
"""

from __future__ import annotations

import argparse
import os
import random

import numpy as np
import torch

from common.errors import UserError

THREADS_ENV = "ZOL_TORCH_THREADS"


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help=f"torch CPU threads; 0 = all cores, divided between the processes of train.nproc "
        f"(default: ${THREADS_ENV}, else 0). Changes the speed, not the results",
    )


def torch_threads(option: int | None) -> int:
    """--threads when given, else $ZOL_TORCH_THREADS, else 0 (all cores); a negative or non-numeric value is a
    UserError naming where it came from."""
    where, value = "--threads", option
    if value is None:
        where, text = f"${THREADS_ENV}", os.environ.get(THREADS_ENV, "0").strip() or "0"
        try:
            value = int(text)
        except ValueError:
            raise UserError(f"{where} must be a whole number of threads >= 0 (0 = all cores), got {text!r}") from None
    if value < 0:
        raise UserError(f"{where} must be a whole number of threads >= 0 (0 = all cores), got {value}")
    return value


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def configure_torch(device: torch.device, num_threads: int) -> None:
    """All cores when num_threads is 0; deterministic kernels on CPU (the same run twice gives the same numbers)."""
    torch.set_num_threads(num_threads if num_threads > 0 else (os.cpu_count() or 1))
    torch.use_deterministic_algorithms(device.type == "cpu")
    # deterministic mode would also NaN-fill every new tensor: a large cost (LSTM workspaces) and no effect on results
    torch.utils.deterministic.fill_uninitialized_memory = False
