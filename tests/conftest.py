"""Shared pytest helpers: where test artefacts go, and whether we run in CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def in_ci() -> bool:
    """True when the CI environment variable is set (CI=true), where optional tools must not be skipped."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """``test-artifacts/`` at the repository root (git-ignored): screenshots and other files to look at."""
    folder = REPO_ROOT / "test-artifacts"
    folder.mkdir(exist_ok=True)
    return folder
