"""Shared pytest fixtures."""
from __future__ import annotations

from pathlib import Path

import pytest

from crawl_support import MirrorServer, build_fixture_mirror


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
