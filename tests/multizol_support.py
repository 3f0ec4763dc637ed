"""The one run of the public Multi-ZOL part (text only) that test_multizol_e2e.py and test_model_public.py share:
`dvc repro` in a temporary copy of the repository with the recipe of docs/multizol.md and otherwise params.yaml's
values (8 epochs of the default MIMN), seed 42 and one torch thread, as docs/model-tuning.md measured it. One
training serves both files: the chain checks and the quality claims read the same outputs.
`MULTIZOL_TEST_EPOCHS=N` caps the epochs for a quicker look (the quality claims need the default budget).

The run starts in the background when the session begins (conftest.py): it trains on one thread, so on a 2-core
machine the tests collected before its two files run beside it on the other core instead of waiting for it."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import yaml
from test_pipeline_e2e import REPO, _copy_project, _env, _run

RELEASE = Path(os.environ.get("MULTIZOL_PUBLIC", REPO.parent / "shared" / "data" / "multizol-public"))
EPOCHS = int(os.environ.get("MULTIZOL_TEST_EPOCHS", "0"))  # 0: params.yaml's train.max_epochs
# the number of threads changes the speed, not the numbers (model/runtime.py); one, as the figures were measured
TORCH_THREADS = "1"
# pytest-timeout's limit for the tests of the two files: the first one's set-up waits for the run (about 5 minutes
# alone on 2 free cores; it neared the suite's 900 s on a machine shared with other jobs)
PUBLIC_RUN_TIMEOUT_S = 1800


def release_present() -> bool:
    return (RELEASE / "zol_Train_jieba.txt").is_file()


def multizol_params(path: Path, release: Path) -> None:
    """The recipe of docs/multizol.md for the release; the model and training as params.yaml has them."""
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params["data"]["raw"] = "data/raw/multizol"
    params["multizol"]["release"] = str(release.resolve())
    params["split"]["method"] = "predefined"
    params["clean"]["require_image"] = False
    params["features"]["weights"] = "random"  # no image to read: the backbone is never loaded
    if EPOCHS:
        params["train"]["max_epochs"] = min(params["train"]["max_epochs"], EPOCHS)
    params["train"].update(repeats=1, seed=42)
    path.write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")


class ReleaseRun:
    """`dvc repro` of the release in a copy of the project at `root`, started at once; `result()` waits for it."""

    def __init__(self, root: Path, logs: Path) -> None:
        self.root, self.logs = root, logs
        _copy_project(root)
        multizol_params(root / "params.yaml", RELEASE)
        _run(["git", "init", "-q"], root)
        with open(logs / "stdout.txt", "w") as out, open(logs / "stderr.txt", "w") as err:
            self.proc = subprocess.Popen(
                ["dvc", "repro"],
                cwd=root,
                env=_env(root, {"ZOL_TORCH_THREADS": TORCH_THREADS}),
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group: stop() ends dvc and the stage it runs
            )

    def result(self) -> str:
        """The run's output once it has ended; it must have succeeded."""
        code = self.proc.wait(timeout=PUBLIC_RUN_TIMEOUT_S)
        out = (self.logs / "stdout.txt").read_text(encoding="utf-8")
        err = (self.logs / "stderr.txt").read_text(encoding="utf-8")
        assert code == 0, f"dvc repro of the release failed (exit {code}):\n{out[-4000:]}\n{err[-4000:]}"
        return out

    def stop(self) -> None:
        """End the run if it still goes (a session that stopped before its tests)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=60)
