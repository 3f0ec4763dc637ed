"""Where a crawl writes: a staging folder beside `out` that replaces `out` only when the crawl succeeded, under a lock.

Every crawl into a folder `out` (the DVC stage, `scrapy crawl zol -a out=DIR` by hand, `python -m crawler.merge`)
goes through `CrawlOutput`:
- `.<out>.lock` beside `out` is held (fcntl.flock) for the whole run, so a second crawl into the same `out` is refused
  with one line instead of mixing its files into the first one's (the kernel releases it when a crawl dies; a
  finished crawl deletes it);
- the crawl writes `.<out>.partial` beside `out` (kept between runs only when a JOBDIR resumes it);
- `commit()` swaps it in for `out` when the crawl succeeded; a failed, interrupted or empty crawl leaves `out`
  byte-identical and its own output in `.<out>.partial` for a look.
`out` may hold only a crawl's output (it is replaced whole): anything else there is refused, never deleted.
Under `dvc repro` DVC itself deletes `out` (a stage's non-persist output) before the stage runs: a failed crawl then
says so, and how to get the last good one back (`previous_output_note`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path
from typing import IO

from common.atomic import check_output_folder, replace_dir
from common.contract import IMAGES_DIR, REVIEWS_FILE, STATS_FILE
from common.errors import UserError

CRAWL_OUTPUT_ENTRIES = {REVIEWS_FILE, STATS_FILE, IMAGES_DIR}


def check_out_folder(out: Path) -> None:
    """`out` is rewritten whole: refuse a folder that holds anything but a crawl's output."""
    check_output_folder(out, CRAWL_OUTPUT_ENTRIES, "crawl.out")


def previous_output_note(out: Path) -> str:
    """What a failed crawl left of `out`, truthfully: by hand, `out` as it was; inside a DVC stage (DVC sets
    DVC_STAGE to the running stage's address, e.g. sources/zol/dvc.yaml:crawl) DVC removed `out` before the command
    ran, and `dvc checkout` of that stage restores the output its dvc.lock records."""
    stage = os.environ.get("DVC_STAGE")
    if stage:
        return (
            f"DVC removed {out} before the stage ran; `dvc checkout {stage}` restores the last good crawl from "
            f"DVC's cache"
        )
    return f"{out} left unchanged"


class CrawlOutput:
    """The lock and the staging folder of one crawl into `out` (see the module doc)."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out).absolute()
        self.staging = self.out.with_name(f".{self.out.name}.partial")
        self.lock_path = self.out.with_name(f".{self.out.name}.lock")
        self._lock: IO | None = None

    def acquire(self, keep_partial: bool = False) -> CrawlOutput:
        """Take the lock, check `out`, and start from an empty staging folder unless `keep_partial` (a resume)."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = self._take_lock()
        self._lock = handle
        try:
            check_out_folder(self.out)
            if not keep_partial:
                shutil.rmtree(self.staging, ignore_errors=True)
        except BaseException:
            self.release()
            raise
        return self

    def probe(self) -> None:
        """Refuse now, in one line, what `acquire` would refuse (another crawl holds the lock, a foreign `out`)."""
        self.acquire(keep_partial=True)
        self.release()

    def _take_lock(self) -> IO:
        """The lock file, flocked; it is deleted at release, so a lock taken on a file deleted meanwhile is retried."""
        while True:
            handle = self.lock_path.open("a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                raise UserError(
                    f"another crawl is writing {self.out} (it holds {self.lock_path}): wait for it to "
                    f"end or crawl into another folder"
                ) from None
            try:
                if os.stat(self.lock_path).st_ino == os.fstat(handle.fileno()).st_ino:
                    return handle
            except FileNotFoundError:
                pass
            handle.close()  # its holder released and deleted it between our open and our flock: take the new one

    def commit(self) -> None:
        """The crawl succeeded: its staging folder becomes `out`."""
        if not (self.staging / REVIEWS_FILE).is_file():
            raise UserError(
                f"the crawl ended without writing {self.staging / REVIEWS_FILE}; {previous_output_note(self.out)}"
            )
        replace_dir(self.staging, self.out)

    def release(self) -> None:
        if self._lock is not None:
            self.lock_path.unlink(missing_ok=True)  # still held: nobody else can be holding this path's lock
            self._lock.close()  # closing the file drops the flock
            self._lock = None

    def __enter__(self) -> CrawlOutput:
        return self.acquire() if self._lock is None else self

    def __exit__(self, *exc) -> None:
        self.release()
