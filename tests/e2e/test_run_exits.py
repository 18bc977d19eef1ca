"""How ``sleepstream run`` ends: a sink that cannot write raises a technical alarm and the run
exits non-zero; a broker that refuses the credentials ends the run with one line and exit 2;
SIGTERM and SIGINT stop it cleanly while it waits for a stream that is not there."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from sleepstream.engine.app.cli import main as cli_main
from tests.drivers.test_edf import _write_edf
from tests.e2e.harness import ROOT
from tests.peers import refusing_broker


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "engine.toml"
    path.write_text('[model]\ncheckpoint = "none"\n' + body)
    return path


def test_a_sink_that_cannot_write_raises_a_technical_alarm_and_exits_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_edf(tmp_path / "night.edf", seconds=20)
    config = _write(tmp_path, '[[beds]]\nid = "b1"\n[[beds.sources]]\nkind = "edf"\n'
                    'path = "night.edf"\nspeed = 200\n'
                    '[[sinks]]\nkind = "jsonl"\npath = "/dev/full"\n')  # the disk is full
    assert cli_main(["run", "--config", str(config), "--seconds", "120"]) == 1
    out = capsys.readouterr()
    assert "sink_failed (technical) x1" in out.out
    (line,) = [x for x in out.err.splitlines() if x.startswith("sleepstream run: sink failed")]
    assert "/dev/full" in line and "No space left" in line


@pytest.mark.parametrize("sinks", ["", '[[sinks]]\nkind = "mqtt"\n'])
def test_refused_credentials_end_the_run_with_one_line_and_exit_2(
        tmp_path: Path, sinks: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Without an MQTT sink the bed stops; with one, the engine's command subscriber too."""
    proc, port = refusing_broker(tmp_path)
    try:
        site = f"s{uuid.uuid4().hex[:8]}"
        config = _write(tmp_path, f'[mqtt]\nport = {port}\nusername = "device"\n'
                        f'password = "wrong"\nauth_tries = 2\n[[beds]]\nid = "b1"\n'
                        f'site = "{site}"\n[[beds.sources]]\nkind = "mqtt"\n'
                        'channels = [{name = "SpO2", fs = 1.0}]\n' + sinks)
        # --seconds is a hang guard: two refusals end the run long before it
        assert cli_main(["run", "--config", str(config), "--seconds", "120"]) == 2
    finally:
        proc.terminate()
        proc.wait(5)
    lines = [x for x in capsys.readouterr().err.splitlines()
             if x.startswith(("sleepstream run: bed", "sleepstream: "))]
    assert len(lines) == 1 and "refused the credentials 2 times" in lines[0], lines


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_a_run_that_waits_for_a_missing_stream(tmp_path: Path,
                                                            sig: signal.Signals) -> None:
    config = _write(tmp_path, f'[[beds]]\nid = "b1"\n[[beds.sources]]\nkind = "lsl"\n'
                    f'name = "absent-{uuid.uuid4().hex[:8]}"\ntimeout_s = 3600\n')
    proc = subprocess.Popen([sys.executable, "-m", "sleepstream", "run", "--config",
                             str(config)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # running once the banner is out
            if line.startswith("sleepstream run:"):
                break
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)  # a hang guard: it stops within a second
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "== run summary ==" in out and "Traceback" not in err
    assert "  stages: none\n" in out  # no data came: nothing staged
    assert "  apnea minutes: none\n" in out  # ... and no minute scored


@pytest.mark.parametrize("value", ["nan", "-1", "0", "abc"])
def test_seconds_that_would_end_the_run_at_once_are_refused(
        value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:  # argparse: usage and exit 2
        cli_main(["run", "--config", "engine.toml", "--seconds", value])
    assert info.value.code == 2 and "number of seconds > 0" in capsys.readouterr().err


def test_replay_to_a_full_disk_exits_1_in_plain_lines(tmp_path: Path) -> None:
    _write_edf(tmp_path / "night.edf", seconds=20)
    done = subprocess.run([sys.executable, "-m", "sleepstream", "replay",
                           str(tmp_path / "night.edf"), "--max-speed", "--no-model", "--quiet",
                           "--out", "/dev/full"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1
    assert "sink_failed x1" in done.stdout
    assert "sleepstream replay: sink failed" in done.stderr and "Traceback" not in done.stderr
