"""Shared settings of the kfgan tests: one torch thread; sizes exactly as each test sets them."""

from __future__ import annotations

import pytest
import torch

from runkit.config import SMOKE_ENV


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _sizes_as_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """SMOKE_TEST in the caller's environment would shrink the sizes a test leaves at their defaults."""
    monkeypatch.delenv(SMOKE_ENV, raising=False)
