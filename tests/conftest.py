"""Shared fixtures. CI runs bounded versions of soak tests: see ``iterations()``."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True, scope="session")
def _seal_key(tmp_path_factory):
    """The configuration seal's key (firmware/config/sealkey.py) of every meter the tests run: one of their own,
    not the user's ~/.local/state one; the meters they start inherit it through the environment."""
    if "METER_SEAL_KEY" not in os.environ:
        os.environ["METER_SEAL_KEY"] = str(tmp_path_factory.mktemp("seal-key") / "seal.key")
    yield


def iterations(ci: int, local: int, soak: int | None = None) -> int:
    """How many iterations a randomized test runs: METER_SOAK=1 for the long version."""
    if os.environ.get("METER_SOAK") and soak:
        return soak
    return ci if CI else local


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def python() -> str:
    return sys.executable


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env
