"""Synthetic nights, generated once per test session and shared by the alert tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .synthetic import SyntheticRun, make_run


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., SyntheticRun]:
    cache: dict[tuple[str, float, int], SyntheticRun] = {}
    folder = tmp_path_factory.mktemp("synthetic")

    def get(profile: str, hours: float, seed: int) -> SyntheticRun:
        key = (profile, hours, seed)
        if key not in cache:
            cache[key] = make_run(profile, hours, seed, folder)
        return cache[key]

    return get
