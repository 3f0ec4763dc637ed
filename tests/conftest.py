"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from crawl_support import MirrorServer, RedisServer, build_fixture_mirror
from hypothesis import HealthCheck, settings
from multizol_support import RELEASE, release_present, run_release

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


@pytest.fixture(scope="session")
def public_release_run(tmp_path_factory) -> tuple[Path, str]:
    """(repository copy, `dvc repro` output) of the public Multi-ZOL part through the whole pipeline with the default
    model and training (tests/multizol_support.py): one run for test_multizol_e2e.py and test_model_public.py."""
    if not release_present():
        pytest.skip(f"no Multi-ZOL public part at {RELEASE} (set MULTIZOL_PUBLIC)")
    root = tmp_path_factory.mktemp("multizol-repo")
    return root, run_release(root)
