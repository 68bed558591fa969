"""Integration tests: pentora against real programs (Debian's daemons) on 127.0.0.1."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: scans real daemons installed from Debian's packages (root, apt-get)")
