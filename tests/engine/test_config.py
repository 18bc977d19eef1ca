"""Configuration: valid files load into frozen dataclasses; every problem is reported with where."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest

from sleepstream.engine.app.cli import main as cli_main
from sleepstream.engine.config import load_config
from sleepstream.engine.errors import ConfigError
from tests.drivers.test_edf import _write_edf

GOOD = """
[engine]
hop_s = 1
epoch_s = 30

[model]
checkpoint = "none"

[[beds]]
id = "ward-a-1"
site = "ward-a"
[[beds.sources]]
kind = "edf"
path = "night.edf"
speed = 10
[[beds.channels]]
pattern = "Fpz*"
modality = "eeg"
scale = 1e6

[[sinks]]
kind = "jsonl"
path = "events.jsonl"
"""


def _write(tmp_path, text):
    _write_edf(tmp_path / "night.edf", seconds=2)  # named by GOOD
    path = tmp_path / "engine.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_valid_file_loads_into_frozen_dataclasses(tmp_path):
    config = load_config(_write(tmp_path, GOOD))
    assert config.beds[0].id == "ward-a-1"
    assert config.beds[0].sources[0].options["speed"] == 10
    assert config.beds[0].channel_rules[0].scale == 1e6
    assert config.engine.hop_s == 1.0 and isinstance(config.engine.hop_s, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.engine.hop_s = 2.0  # type: ignore[misc]


def test_every_problem_is_reported_with_its_location(tmp_path):
    bad = """
    [engine]
    hop_s = "fast"
    epoch_s = 30
    colour = "blue"

    [model]
    backend = "tpu"

    [[beds]]
    id = "a/b"
    [[beds.sources]]
    kind = "lsl"
    [[beds.sources]]
    kind = "edf"
    speed = -1
    [[beds.channels]]
    pattern = "C4*"
    modality = "brainwaves"

    [[beds]]
    id = "dup"
    [[beds.sources]]
    kind = "carrier-pigeon"
    [[beds]]
    id = "dup"
    [[beds.sources]]
    kind = "edf"
    path = "x.edf"

    [[sinks]]
    kind = "jsonl"
    """
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, bad))
    where = {w for w, _ in err.value.problems}
    assert {
        "engine.hop_s", "engine.colour", "model.backend", "beds[0].id", "beds[0].sources[0]",
        "beds[0].sources[1].path", "beds[0].sources[1].speed", "beds[0].channels[0].modality",
        "beds[1].sources[0].kind", "beds", "sinks[0].path",
    } <= where
    text = str(err.value)
    assert "expected a number" in text and "required" in text and "more than once" in text


def test_toml_syntax_errors_and_missing_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "[engine\nhop_s = 1"))
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.toml")


def test_check_config_command_says_what_is_wrong(tmp_path, capsys):
    assert cli_main(["check-config", str(_write(tmp_path, GOOD))]) == 0
    assert "ok (1 beds" in capsys.readouterr().out
    bad = _write(tmp_path, "[[beds]]\nid = 'x'\n")
    assert cli_main(["check-config", str(bad)]) == 2
    out = capsys.readouterr().out
    assert "beds[0].sources: a bed needs at least one" in out
