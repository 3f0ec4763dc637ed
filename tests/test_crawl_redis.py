"""--backend redis: `scrapy crawl zol` workers sharing a real Redis frontier, over the loopback HTTP mirror."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
from crawl_support import CRAWLED_AT, REPO, RedisServer, run_crawl, scrapy_command

from crawler.frontier import Frontier
from crawler.merge import merge
from crawler.output import summary_line
from sitegen.mirror import generate_mirror

pytestmark = pytest.mark.slow
PRODUCTS, REVIEWS_PER_PRODUCT, SEED = 4, 4, 5  # 45 reviews, 17 pages, 83 images: small and every page kind


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("site") / "mirror"
    return root, generate_mirror(root, PRODUCTS, REVIEWS_PER_PRODUCT, SEED)


@pytest.fixture(scope="module")
def single_crawl(site, tmp_path_factory):
    """The single-process crawl of the same mirror: what the merged output must equal byte for byte."""
    root, manifest = site
    result = run_crawl(tmp_path_factory.mktemp("single") / "out", str(root), f"crawl_date={manifest['crawl_date']}")
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _worker(out: Path, mirror: str, redis_url: str, key: str, ttl: float = 30, *settings: str) -> subprocess.Popen:
    command, env = scrapy_command(out, mirror, settings=("ZOL_REDIS_HOST_DELAY=0", *settings))
    env.update(
        ZOL_BACKEND="redis",
        REDIS_URL=redis_url,
        ZOL_REDIS_KEY=key,
        ZOL_REDIS_WORKER_TTL=str(ttl),
        ZOL_LOG_LEVEL="WARNING",
    )
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def _finish(process: subprocess.Popen) -> None:
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]


def _journal_ids(folder: Path) -> list[str]:
    path = folder / "journal.jsonl"
    return [json.loads(line)["review_id"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _assert_ground_truth(out: Path, manifest: dict, single) -> dict:
    lines = (out / "reviews.jsonl").read_text(encoding="utf-8").splitlines()
    ids = [json.loads(line)["review_id"] for line in lines]
    assert len(ids) == len(set(ids))  # none twice
    assert sorted(ids) == sorted(r["review_id"] for r in manifest["reviews"])  # none missing
    assert (out / "reviews.jsonl").read_bytes() == (single.out / "reviews.jsonl").read_bytes()
    for image in (single.out / "images").iterdir():
        assert (out / "images" / image.name).read_bytes() == image.read_bytes()
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
        p.name for p in (single.out / "images").iterdir()
    )
    stats = json.loads((out / "crawl_stats.json").read_text(encoding="utf-8"))
    # the accounting counters are the crawl's, each request counted once however many workers read it
    for key in (
        "reviews",
        "reviews_lost",
        "reviews_accounted",
        "reviews_scraped_this_run",
        "duplicates_skipped",
        "pages",
        "page_failures",
        "aspects",
        "unknown_labels",
        "images",
        "long_fallback_to_list",
    ):
        assert stats[key] == single.stats[key], key
    assert stats["reviews_accounted"] == len(manifest["reviews"]) and stats["reviews_lost"] == {}
    return stats


def test_frontier_reliable_queue_and_counters(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    alive = Frontier(client, "unit", "alive", worker_ttl_s=30)
    doomed = Frontier(client, "unit", "doomed", worker_ttl_s=0.2)
    for frontier in (alive, doomed):
        frontier.heartbeat()
    assert alive.push_new("fp1", -10, b"r1") and alive.push_new("fp2", 0, b"r2")
    assert not doomed.push_new("fp1", -10, b"r1-again")  # a replayed request is absorbed
    assert doomed.pop() == b"r1" and alive.pop() == b"r2"  # highest priority first, into the in-flight hash
    assert alive.queued() == 0 and alive.pending() == 2
    assert alive.ack(b"r2", {"zol/pages/ajax": 1, "zol/retry_backoff_s": 0.5})
    assert not alive.ack(b"r2", {"zol/pages/ajax": 1})  # acked once: counted once
    time.sleep(0.3)  # the doomed worker's heartbeat expired: its request goes back
    assert alive.requeue_dead() == 1 and alive.pending() == 1
    assert not doomed.ack(b"r1", {"zol/pages/ranking": 1})  # its late ack counts nothing
    assert alive.pop() == b"r1" and alive.ack(b"r1", {"zol/pages/ranking": 1})
    assert alive.pending() == 0
    assert alive.stats() == {"zol/pages/ajax": 1, "zol/pages/ranking": 1, "zol/retry_backoff_s": 0.5}
    assert alive.claim("review", "42", "p1:1") == "p1:1" and doomed.claim("review", "42", "p1:3") == "p1:1"


def test_shared_host_delay_spaces_requests_of_all_workers(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    workers = [Frontier(redis.Redis.from_url(redis_server.url), "polite", name) for name in ("a", "b")]
    waits = [workers[i % 2].reserve_host("detail.zol.com.cn", 0.2) for i in range(6)]
    # the reservations are back to back, 0.2 s apart, whichever worker asks
    assert all(abs(wait - 0.2 * i) < 0.05 for i, wait in enumerate(waits)), waits
    assert workers[0].reserve_host("pro-fd.zol-img.com.cn", 0.2) == 0  # per host
    assert client.exists("polite:next:detail.zol.com.cn")


def test_two_workers_write_the_ground_truth(site, single_crawl, mirror_server, redis_server, tmp_path):
    root, manifest = site
    server = mirror_server(root)
    # nothing is answered before both workers have joined, and each answer takes long enough that the crawl
    # outlasts the idle worker's next look at the queue (under load, one worker could otherwise take it all)
    server.delay, server.gate = 0.3, threading.Event()
    folders = [tmp_path / "w1", tmp_path / "w2"]
    workers = [_worker(folder, server.url, redis_server.url, "two", 30, "CONCURRENT_REQUESTS=2") for folder in folders]
    client, deadline = redis.Redis.from_url(redis_server.url), time.monotonic() + 60
    while client.scard("two:workers") < 2:
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers)
        time.sleep(0.02)
    server.gate.set()
    for process in workers:
        _finish(process)
    shares = [json.loads((f / "worker_stats.json").read_text(encoding="utf-8")) for f in folders]
    assert all(share["crawl_finished"] for share in shares)
    assert all(share["local"].get("scheduler/dequeued/redis", 0) > 0 for share in shares)  # both crawled
    assert len(_journal_ids(folders[0])) + len(_journal_ids(folders[1])) == len(manifest["reviews"])
    stats = merge(folders, tmp_path / "raw")
    _assert_ground_truth(tmp_path / "raw", manifest, single_crawl)
    # every page was fetched by one worker only (a scripted fault's page once more per fault)
    hits = Counter(path for _, path in server.log if "robots.txt" not in path and "zol-img" not in path)
    assert hits and all(n == 1 + len(manifest["faults"].get(path, [])) for path, n in hits.items()), hits
    assert stats["reviews"] == len(manifest["reviews"])
    assert Frontier(redis.Redis.from_url(redis_server.url), "two").pending() == 0


def test_a_killed_worker_loses_nothing(site, single_crawl, mirror_server, redis_server, tmp_path):
    """Worker A is SIGKILLed mid-crawl holding requests; worker B requeues them once A's heartbeat expires and
    finishes: the merge of both folders is the ground truth, and every counter is counted exactly once."""
    root, manifest = site
    server = mirror_server(root)
    server.delay = 0.05
    first, second = tmp_path / "a", tmp_path / "b"
    killed = _worker(first, server.url, redis_server.url, "kill", ttl=1.5)
    deadline = time.monotonic() + 60
    while len(_journal_ids(first) if (first / "journal.jsonl").exists() else []) < 5:
        assert time.monotonic() < deadline and killed.poll() is None
        time.sleep(0.02)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    assert Frontier(redis.Redis.from_url(redis_server.url), "kill").pending() > 0  # it held work
    assert not (first / "worker_stats.json").exists()
    server.delay = 0.0
    survivor = _worker(second, server.url, redis_server.url, "kill", ttl=1.5)
    _finish(survivor)
    local = json.loads((second / "worker_stats.json").read_text(encoding="utf-8"))["local"]
    assert local["frontier/requeued_from_dead_workers"] >= 1
    merge([first, second], tmp_path / "raw")
    _assert_ground_truth(tmp_path / "raw", manifest, single_crawl)


def _stage_command(tmp_path: Path, mirror: str, out: Path, redis_url: str, workers: int = 2) -> list[str]:
    """The stage over a params file that says what to crawl; how to run it (Redis, workers) is on the command line."""
    params = tmp_path / "params.yaml"
    params.write_text(
        f"crawl:\n  mirror: '{mirror}'\n  out: '{out}'\n  list_pages: 50\n  review_pages: 20\n"
        f"  products: ''\n  max_products: 0\n  max_images_per_review: 0\n  polite: false\n"
        f"  crawl_date: ''\n",
        encoding="utf-8",
    )
    options = ["--backend", "redis", "--redis-url", redis_url, "--redis-key", "stage", "--workers", str(workers)]
    return [sys.executable, "-m", "crawler.crawl", "--params", str(params), *options]


def _stage_env() -> dict:
    return {**os.environ, "ZOL_CRAWLED_AT": CRAWLED_AT, "ZOL_LOG_LEVEL": "WARNING"}


def _stage(tmp_path: Path, mirror: str, out: Path, redis_url: str, workers: int = 2) -> subprocess.CompletedProcess:
    return subprocess.run(
        _stage_command(tmp_path, mirror, out, redis_url, workers),
        cwd=REPO,
        env=_stage_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_stage_with_redis_backend_equals_the_local_crawl(site, single_crawl, redis_server, tmp_path):
    root, manifest = site
    out = tmp_path / "raw"
    done = _stage(tmp_path, str(root), out, redis_server.url)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 worker(s) on redis://" in done.stdout and f"-> {len(manifest['reviews'])} reviews (0 lost)" in done.stdout
    _assert_ground_truth(out, manifest, single_crawl)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "raw"]  # no worker folder left


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://127.0.0.1:1/0", "--redis-url (REDIS_URL) must be a redis:// URL"),
        ("redis://127.0.0.1:1/0", "cannot reach Redis at redis://127.0.0.1:1/0"),
    ],
)
def test_stage_names_a_bad_redis(site, tmp_path, url, message):
    root, _ = site
    done = _stage(tmp_path, str(root), tmp_path / "raw", url)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and message in done.stderr


def test_merge_refuses_folders_of_an_unfinished_crawl(tmp_path):
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "journal.jsonl").write_text("", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "crawler.merge", str(folder), "--out", str(tmp_path / "raw")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "no worker saw the crawl finish" in done.stderr
    assert not (tmp_path / "raw").exists()


# ---- faults and hostile input (issue: nothing a fault or a hostile input does may lose data or run code) --------


class _Exploit:
    """Unpickling this runs a shell command: what anyone able to write to the Redis could push."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_poison_members_are_moved_aside_never_run(site, single_crawl, redis_server, tmp_path):
    root, manifest = site
    marker = tmp_path / "PWNED"
    client = redis.Redis.from_url(redis_server.url)
    poison = {pickle.dumps(_Exploit(marker)), b"junk", b'{"url": 5}', b'{"url": "https://x.cn/", "callback": "close"}'}
    client.zadd("poison:requests", {member: -100 for member in poison})  # popped before the crawl's own requests
    folder = tmp_path / "w"
    _finish(_worker(folder, str(root), redis_server.url, "poison"))
    assert not marker.exists()  # no code ran
    assert client.smembers("poison:poison") == poison
    assert Frontier(client, "poison").pending() == 0  # each was acknowledged, none is left in flight
    saved = json.loads((folder / "worker_stats.json").read_text(encoding="utf-8"))
    assert saved["crawl"]["frontier/poison/not_json"] == 2 and saved["crawl"]["frontier/poison/not_a_request"] == 1
    assert saved["crawl"]["frontier/poison/bad_callback"] == 1
    stats = merge([folder], tmp_path / "raw")  # and the crawl went on, whole
    _assert_ground_truth(tmp_path / "raw", manifest, single_crawl)
    assert stats["frontier_poison"] == {"bad_callback": 1, "not_a_request": 1, "not_json": 2}
    # the stage's one summary line says so: a request of the crawl's own that turned poison would be missing
    assert summary_line(stats).endswith(
        "; 4 Redis queue member(s) set aside as poison, unread (crawl_stats.json frontier_poison)"
    )
    assert "poison" not in summary_line({**stats, "frontier_poison": {}})


def test_frontier_keys_are_names_not_patterns(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    client.set("unrelated", "keep")
    for key in ("*", "zol:*", "a b", ""):
        done = subprocess.run(
            [sys.executable, "-m", "crawler.frontier", "reset", "--redis-url", redis_server.url, "--key", key],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and "letters, digits" in done.stderr and "Traceback" not in done.stderr
    assert client.get("unrelated") == b"keep"


def _write_good_crawl(out: Path) -> dict[str, bytes]:
    (out / "images").mkdir(parents=True)
    files = {
        "reviews.jsonl": b'{"review_id": "1", "product_id": "2"}\n',
        "crawl_stats.json": b'{"reviews": 1}\n',
        "images/a.jpg": b"\xff\xd8\xffgood",
    }
    for name, data in files.items():
        (out / name).write_bytes(data)
    return files


def _tree(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _wait_for_journal(folders: list[Path], lines: int, processes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 90
    while sum(len(_journal_ids(f)) if (f / "journal.jsonl").exists() else 0 for f in folders) < lines:
        assert time.monotonic() < deadline and all(p.poll() is None for p in processes)
        time.sleep(0.02)


def test_a_redis_restarted_empty_mid_crawl_fails_the_stage(site, mirror_server, redis_server, tmp_path):
    root, _ = site
    server = mirror_server(root)
    server.delay = 0.1
    first = RedisServer(tmp_path / "r1")
    out = tmp_path / "raw"
    files = _write_good_crawl(out)
    # how to run it from the environment this time (the options' variables), as a scheduler would set them
    run_env = {"ZOL_BACKEND": "redis", "REDIS_URL": first.url, "ZOL_REDIS_KEY": "stage", "ZOL_CRAWL_WORKERS": "2"}
    stage = subprocess.Popen(
        _stage_command(tmp_path, server.url, out, first.url)[:5],  # no options after --params FILE
        cwd=REPO,
        text=True,
        env={**_stage_env(), **run_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    second = None
    try:
        _wait_for_journal([tmp_path / f".raw.partial.worker{i}" for i in range(2)], 3, [stage])
        first.stop()
        second = RedisServer(tmp_path / "r2", port=first.port)  # the same address, empty
        _, stderr = stage.communicate(timeout=120)
    finally:
        stage.kill()
        for redis_process in (first, second):
            if redis_process is not None:
                redis_process.stop()
    assert stage.returncode == 8, stderr[-3000:]
    assert "lost this crawl's state" in stderr and f"{out} left unchanged" in stderr
    assert _tree(out) == files
    # the output of the run is where the last line says, in the workers' folders (nothing was merged)
    assert (
        stderr.strip()
        .splitlines()[-1]
        .endswith(f"this run's output is in {tmp_path / '.raw.partial.worker0'} to .raw.partial.worker1")
    )
    assert all((tmp_path / f".raw.partial.worker{i}" / "journal.jsonl").is_file() for i in range(2))


def _worker_through_an_outage(
    site, mirror_server, tmp_path, key: str, delay: float, bound: float, settings: tuple[str, ...], hang: bool
) -> tuple[int, float, str]:
    """A worker on its own Redis, which stops (or hangs: SIGSTOP, connections accepted and never answered) once the
    worker has written two reviews; (exit status, seconds from the outage to the worker's exit, stderr)."""
    root, _ = site
    server = mirror_server(root)
    server.delay = delay
    own = RedisServer(tmp_path / "r")
    worker = _worker(tmp_path / "w", server.url, own.url, key, 30, *settings, f"ZOL_REDIS_DOWN_TIMEOUT={bound}")
    try:
        _wait_for_journal([tmp_path / "w"], 2, [worker])
        if hang:
            own.process.send_signal(signal.SIGSTOP)
        else:
            own.stop()
        started = time.monotonic()
        try:
            _, stderr = worker.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker still ran {time.monotonic() - started:.0f} s after Redis went")
        return worker.returncode, time.monotonic() - started, stderr
    finally:
        worker.kill()
        if hang:
            own.process.send_signal(signal.SIGCONT)
        own.stop()


def _assert_one_frontier_error(stderr: str) -> str:
    """One line from the frontier, no traceback (the spider may count a request it could not queue as dropped)."""
    errors = [line for line in stderr.splitlines() if "[crawler.redis_backend] ERROR" in line]
    assert len(errors) == 1 and "Redis unreachable" in errors[0] and "Traceback" not in stderr, stderr[-3000:]
    return errors[0]


def test_redis_down_ends_a_worker_in_one_line(site, mirror_server, redis_server, tmp_path):
    bound = 3
    code, took, stderr = _worker_through_an_outage(
        site, mirror_server, tmp_path, "down", 0.1, bound, ("CONCURRENT_REQUESTS=2",), hang=False
    )
    assert code == 8, stderr[-3000:]
    assert took < bound + 30
    assert "this worker stops" in _assert_one_frontier_error(stderr)


def test_a_worker_with_many_requests_in_flight_ends_soon_after_the_redis_outage_bound(
    site, mirror_server, redis_server, tmp_path
):
    """Once the outage bound is passed, closing makes no more Redis calls: before, every request in flight retried
    its claim and its acknowledgement for ~2.5 s each, and 16 of them kept the worker ~45 s past the bound."""
    bound = 3
    settings = ("CONCURRENT_REQUESTS=32", "CONCURRENT_REQUESTS_PER_DOMAIN=16")
    # answers slow enough (0.5 s) that many requests are in flight when Redis goes
    code, took, stderr = _worker_through_an_outage(site, mirror_server, tmp_path, "many", 0.5, bound, settings, False)
    assert code == 8, stderr[-3000:]
    # the bound, ~2.5 s of retries on either side of it, the answers already on their way (0.5 s each), load
    assert took < bound + 18, (took, stderr[-3000:])
    _assert_one_frontier_error(stderr)


def test_a_hung_redis_ends_a_worker_soon_after_the_outage_bound(site, mirror_server, redis_server, tmp_path):
    """A Redis that accepts connections and never answers (stopped, or a network that drops packets): each command
    gives up after a few seconds. Before, each waited 30 s and was retried 5 times, so a worker told to stop after
    3 s of outage took over 6 minutes."""
    bound = 3
    code, took, stderr = _worker_through_an_outage(
        site, mirror_server, tmp_path, "hung", 0.2, bound, ("CONCURRENT_REQUESTS=4",), hang=True
    )
    assert code == 8, stderr[-3000:]
    assert took < bound + 30, (took, stderr[-3000:])
    _assert_one_frontier_error(stderr)


def test_a_request_popped_without_its_answer_is_crawled_not_waited_for(
    site, single_crawl, mirror_server, redis_server, tmp_path
):
    """A pop that ran in Redis but whose answer never reached the worker (a timeout, a connection cut after the
    command) leaves a request in the worker's in-flight hash that the worker does not know of. Idle, the worker puts
    it back in the queue and crawls it; before, it waited for it forever (the crawl never ended)."""
    root, manifest = site
    server = mirror_server(root)
    server.gate = threading.Event()  # the worker pops the first page and waits for its answer
    client = redis.Redis.from_url(redis_server.url)
    folder = tmp_path / "w"
    worker = _worker(folder, server.url, redis_server.url, "orphan")
    try:
        deadline = time.monotonic() + 60
        while not (workers := client.smembers("orphan:workers")) or not client.hlen(
            f"orphan:inflight:{next(iter(workers)).decode()}"
        ):
            assert time.monotonic() < deadline and worker.poll() is None
            time.sleep(0.02)
        inflight = f"orphan:inflight:{next(iter(workers)).decode()}"
        ((member, score),) = client.hgetall(inflight).items()
        lost = json.loads(member)  # the same page as another member: popped, its answer lost
        lost["flags"] = ["popped-answer-lost"]
        client.hset(inflight, json.dumps(lost).encode(), score)
        server.gate.set()
        try:
            _, stderr = worker.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            pytest.fail("the worker waited for a request it never received")
    finally:
        worker.kill()
    assert worker.returncode == 0, stderr[-3000:]
    saved = json.loads((folder / "worker_stats.json").read_text(encoding="utf-8"))
    assert saved["local"]["frontier/requeued_unknown_in_flight"] == 1
    assert Frontier(client, "orphan").pending() == 0
    stats = merge([folder], tmp_path / "raw")
    out = tmp_path / "raw"
    assert (out / "reviews.jsonl").read_bytes() == (single_crawl.out / "reviews.jsonl").read_bytes()
    names = [sorted(p.name for p in (where / "images").iterdir()) for where in (out, single_crawl.out)]
    assert names[0] == names[1]
    # the lost copy of the first ranking page was crawled once more, and nothing else
    expected = dict(single_crawl.stats["pages"])
    expected["ranking"] += 1
    assert stats["pages"] == expected and stats["reviews_lost"] == {}


def test_a_worker_of_another_crawl_id_ends_at_once(site, redis_server, tmp_path):
    root, _ = site
    command, env = scrapy_command(tmp_path / "w", str(root), settings=("ZOL_REDIS_HOST_DELAY=0",))
    env.update(ZOL_BACKEND="redis", REDIS_URL=redis_server.url, ZOL_REDIS_KEY="other", ZOL_REDIS_CRAWL_ID="not-this")
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 8, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if "[crawler.redis_backend] ERROR" in line]
    assert len(errors) == 1 and "does not hold this crawl" in errors[0] and "Traceback" not in done.stderr
    assert not redis.Redis.from_url(redis_server.url).exists("other:requests")  # it queued nothing
