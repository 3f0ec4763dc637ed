"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from crawl_support import MirrorServer, RedisServer, build_fixture_mirror
from hypothesis import HealthCheck, settings
from multizol_support import RELEASE, ReleaseRun, release_present

# Property-based tests at the boundaries where outside data comes in: deterministic (same examples every run),
# at least 50 examples each, no per-example deadline (a loaded CI machine is slow, not wrong).
settings.register_profile(
    "project",
    max_examples=50,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("project")


@pytest.fixture
def mirror_server():
    """start(root) -> a running loopback MirrorServer over `root`; all are stopped after the test."""
    servers: list[MirrorServer] = []

    def start(root: Path) -> MirrorServer:
        server = MirrorServer(root).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()


@pytest.fixture
def fixture_mirror(tmp_path) -> tuple[Path, dict]:
    """A small mirror made of the real 2018 pages (see crawl_support.build_fixture_mirror)."""
    root = tmp_path / "mirror"
    return root, build_fixture_mirror(root)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    """A real redis-server on a free loopback port for the module's tests (skipped when it is not installed)."""
    try:
        server = RedisServer(tmp_path_factory.mktemp("redis"))
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _public_release_started(request, tmp_path_factory):
    """The shared run of the public Multi-ZOL part (tests/multizol_support.py), started in the background as the
    session begins when a selected test needs it and the release is present; stopped at the end if still going."""
    needed = any("public_release_run" in item.fixturenames for item in request.session.items)
    if not (needed and release_present()):
        yield None
        return
    run = ReleaseRun(tmp_path_factory.mktemp("multizol-repo"), tmp_path_factory.mktemp("multizol-logs"))
    yield run
    run.stop()


@pytest.fixture(scope="session")
def public_release_run(_public_release_started) -> tuple[Path, str]:
    """(repository copy, `dvc repro` output) of the public Multi-ZOL part through the whole pipeline with the default
    model and training: one run for test_multizol_e2e.py and test_model_public.py."""
    if _public_release_started is None:
        pytest.skip(f"no Multi-ZOL public part at {RELEASE} (set MULTIZOL_PUBLIC)")
    return _public_release_started.root, _public_release_started.result()
