"""Configs that used to pass check-config and then crash or hang run: each is refused, with
where and what to fix, and check-config exits 2."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sleepstream.engine.app.cli import main as cli_main
from sleepstream.engine.config import load_config
from sleepstream.engine.errors import ConfigError

BASE = """
[model]
checkpoint = "none"
{mqtt}
[[beds]]
id = "b1"
site = {site}
[[beds.sources]]
{source}
{sinks}
"""
EDF = 'kind = "edf"\npath = "night.edf"'
MQTT = 'kind = "mqtt"\nchannels = [{channels}]'


def _config(tmp_path: Path, *, source: str = EDF, site: str = '"w1"', mqtt: str = "",
            sinks: str = "") -> Path:
    (tmp_path / "night.edf").write_bytes(b"")
    path = tmp_path / "engine.toml"
    path.write_text(textwrap.dedent(BASE.format(source=source, site=site, mqtt=mqtt,
                                                sinks=sinks)))
    return path


CASES = [
    ({"source": MQTT.format(channels='{name = "SpO2"}')}, "channels[0].fs"),
    ({"source": MQTT.format(channels='{name = "SpO2", fs = 0}')}, "channels[0].fs"),
    ({"source": MQTT.format(channels='"SpO2"')}, "channels[0]"),
    ({"source": MQTT.format(channels="")}, "channels"),
    ({"source": MQTT.format(channels='{name = "a/b", fs = 1}')}, "channels[0].name"),
    ({"site": '"ward/3"'}, "beds[0].site"),
    ({"source": 'kind = "edf"\npath = "absent.edf"'}, "sources[0].path"),
    ({"source": 'kind = "edf"\npath = "."'}, "sources[0].path"),
    ({"mqtt": "[mqtt]\nport = 0"}, "mqtt.port"),
    ({"mqtt": "[mqtt]\nport = -1"}, "mqtt.port"),
    ({"mqtt": "[mqtt]\nport = 70000"}, "mqtt.port"),
    ({"mqtt": "[mqtt]\nauth_tries = 0"}, "mqtt"),
    ({"mqtt": "[engine]\nring_s = inf"}, "engine.ring_s"),
    ({"mqtt": "[engine]\nring_s = 1e12"}, "engine.ring_s"),
    ({"mqtt": "[engine]\nhop_s = nan"}, "engine.hop_s"),
    ({"source": EDF + "\nchunk_s = 0"}, "chunk_s"),
    ({"source": EDF + "\nchunk_s = -1"}, "chunk_s"),
    ({"source": EDF + "\nspeed = inf"}, "speed"),
    ({"source": 'kind = "lsl"\nname = "x"\ntimeout_s = -1'}, "timeout_s"),
    ({"source": 'kind = "lsl"\nname = "x"\ntimeout_s = inf'}, "timeout_s"),
    ({"sinks": '[[sinks]]\nkind = "jsonl"\npath = "{tmp}/a-file/events.jsonl"'}, "sinks[0].path"),
    ({"sinks": '[[sinks]]\nkind = "jsonl"\npath = "{tmp}"'}, "sinks[0].path"),
    ({"mqtt": '[http]\nlisten = "localhost"'}, "http.listen"),
    ({"mqtt": '[http]\nlisten = "127.0.0.1:70000"'}, "http.listen"),
    ({"mqtt": '[mqtt]\ntls = true\nca_file = "{tmp}/absent-ca.pem"'}, "mqtt.ca_file"),
    ({"mqtt": '[mqtt]\ncert_file = "{tmp}"\nkey_file = "{tmp}/k.pem"'}, "mqtt.cert_file"),
    ({"mqtt": '[cluster]\naddress = "nonsense://x"'}, "cluster.address"),
    ({"mqtt": '[store]\npath = "{tmp}"'}, "store.path"),
]


@pytest.mark.parametrize(("edits", "where"), CASES)
def test_configs_run_cannot_start_are_refused(tmp_path: Path, edits: dict[str, str],
                                              where: str) -> None:
    (tmp_path / "a-file").write_text("x")
    edits = {k: v.replace("{tmp}", str(tmp_path)) for k, v in edits.items()}
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, **edits))
    assert any(where in w for w, _ in info.value.problems), info.value.problems


def test_a_good_base_loads(tmp_path: Path) -> None:
    load_config(_config(tmp_path, source=MQTT.format(channels='{name = "SpO2", fs = 1}'),
                        sinks=f'[[sinks]]\nkind = "jsonl"\npath = "{tmp_path}/new/e.jsonl"'))


def test_non_utf8_files_and_directories_exit_2_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    latin = tmp_path / "latin.toml"
    latin.write_bytes('[[beds]]\nid = "lit-\xe9"\n'.encode("latin-1"))
    for path in (latin, tmp_path):
        assert cli_main(["check-config", str(path)]) == 2
        out = capsys.readouterr()
        text = out.out + out.err
        assert "Traceback" not in text and ("UTF-8" in text or "directory" in text)


def test_check_config_reads_the_edf_headers_run_would_refuse(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path)
    (tmp_path / "night.edf").write_bytes(b"0       " + b" " * 300)  # not an EDF header
    assert cli_main(["check-config", str(path)]) == 2
    assert "sources[0].path" in capsys.readouterr().out


@pytest.mark.parametrize(("section", "where"), [
    ('[model]\ncheckpoint = "{tmp}/no-model"', "model.checkpoint"),  # run: ModelError
    ('[[sinks]]\nkind = "jsonl"\npath = "/proc/events.jsonl"', "sinks[0].path"),
    ('[[sinks]]\nkind = "edf"\npath = "/proc/night.edf"', "sinks[0].path"),
    ('[store]\npath = "/proc/store.db"', "store.path"),  # even root cannot create files there
])
def test_check_config_opens_what_run_would_open(tmp_path: Path, section: str, where: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from tests.drivers.test_edf import _write_edf

    _write_edf(tmp_path / "night.edf", seconds=4)
    path = tmp_path / "engine.toml"
    path.write_text(section.replace("{tmp}", str(tmp_path)) + '\n[[beds]]\nid = "b1"\n'
                    '[[beds.sources]]\nkind = "edf"\npath = "night.edf"\n'
                    + ('' if section.startswith("[model]") else '[model]\ncheckpoint = "none"\n'))
    assert cli_main(["check-config", str(path)]) == 2
    assert f"  {where}: " in capsys.readouterr().out
