"""Fault schedules: parsing, validation messages, and what each fault does to a device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sleepstream.engine.errors import ConfigError
from sleepstream.simulators.faults import load_faults, parse_faults

TOML = """
seed = 7
[[fault]]
kind = "sensor_off"
start_s = 10
duration_s = 5
channels = ["SpO2"]

[[fault]]
kind = "packet_loss"
start_s = 20
duration_s = 2

[[fault]]
kind = "clock_jump"
start_s = 30
offset_s = -12.5

[[fault]]
kind = "outlet_restart"
start_s = 40
duration_s = 3
"""


def test_load_and_apply(tmp_path: Path) -> None:
    path = tmp_path / "faults.toml"
    path.write_text(TOML)
    sched = load_faults(path)
    assert sched.seed == 7 and [f.kind for f in sched.faults] == [
        "sensor_off", "packet_loss", "clock_jump", "outlet_restart"]
    t = np.arange(0, 20, 1.0)
    assert np.flatnonzero(sched.sensor_off("SpO2", t)).tolist() == [10, 11, 12, 13, 14]
    assert not sched.sensor_off("HR", t).any()
    assert sched.packet_fault("HR", 21.0) is not None and sched.packet_fault("HR", 22.0) is None
    assert sched.clock_offset(29.9) == 0 and sched.clock_offset(30.0) == -12.5
    assert sched.outage(41.0) is not None and sched.outage(43.0) is None
    with pytest.raises(ConfigError, match="MQTT only"):
        sched.check_transport("lsl")


def test_every_problem_is_reported_with_its_place() -> None:
    with pytest.raises(ConfigError) as err:
        parse_faults({"fault": [
            {"kind": "meteor", "start_s": 1},
            {"kind": "jitter", "start_s": 1, "duration_s": 2},
            {"kind": "clock_jump", "start_s": 3},
            {"kind": "packet_loss", "start_s": "soon", "duration_s": 1},
            {"kind": "duplicate", "start_s": 1, "duration_s": 0, "colour": "red"},
        ]})
    where = [w for w, _ in err.value.problems]
    assert where == ["faults.fault[0].kind", "faults.fault[1].max_delay_s",
                     "faults.fault[2].offset_s", "faults.fault[3]", "faults.fault[4]",
                     "faults.fault[4].duration_s"]


def test_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_faults(tmp_path / "nope.toml")
