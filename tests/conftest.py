"""Shared fixtures: generated templates as plain data, read the way any deploy tool reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.build import build_all, render_all

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def rendered() -> dict[str, str]:
    return render_all(build_all(), "yaml")


@pytest.fixture(scope="session")
def templates(rendered: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every template parsed with a plain YAML loader (long form needs no CloudFormation tags)."""
    return {name.removesuffix(".yaml"): yaml.safe_load(text) for name, text in rendered.items()}
