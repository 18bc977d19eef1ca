"""``sleepstream bench io`` runs end to end and ends with one JSON line of figures."""

from __future__ import annotations

import json

import pytest

from sleepstream.engine.app.cli import main as cli_main
from tests.peers import Mosquitto


def test_bench_io_prints_rates_against_the_baseline(
    mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main(["bench", "io", "--seconds", "0.3", "--warmup", "0.3", "--devices", "1",
                     "--port", str(mosquitto.port), "--json"])
    assert code == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["baseline_samples_per_s"] > 0
    for key in ("mqtt_inproc", "mqtt_1", "lsl_1"):
        assert figures[f"{key}_samples_per_s"] > 0
        assert figures[f"{key}_ratio"] == pytest.approx(
            figures[f"{key}_samples_per_s"] / figures["baseline_samples_per_s"], rel=1e-3,
            abs=1e-6)  # figures are printed to 6 decimals
