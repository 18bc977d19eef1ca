"""Shared fixtures: where the real recordings are, and real Mosquitto brokers.

In CI (``CI=true``) a skipped test fails instead, unless it needs a GPU (marker ``gpu``, or
the no-GPU check that skips where TensorRT is present): CI is meant to have the shared data,
Mosquitto, Chromium and torch, and a missing one must not pass as green.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers import Mosquitto, running_mosquitto

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT.parent / "shared" / "data"
STRICT = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_GPU_SKIPS = ("TensorRT is available here",)


def _fail_ci_skip(report: pytest.TestReport | pytest.CollectReport, gpu: bool) -> None:
    if not (STRICT and report.skipped) or gpu:
        return
    longrepr = report.longrepr
    reason = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
    if any(r in reason for r in _GPU_SKIPS):
        return
    report.outcome = "failed"
    report.longrepr = f"skipped in CI, where it must run: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, Any, None]:
    outcome = yield
    _fail_ci_skip(outcome.get_result(), item.get_closest_marker("gpu") is not None)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    outcome = yield  # a whole module skipped (``importorskip`` at its top)
    _fail_ci_skip(outcome.get_result(), False)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip("the shared recordings (../shared/data) are not present")
    return DATA_DIR


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One broker for the session; tests use unique topics."""
    with running_mosquitto(tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker


@pytest.fixture
def private_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker this test alone may stop and restart."""
    with running_mosquitto(tmp_path) as broker:
        yield broker
