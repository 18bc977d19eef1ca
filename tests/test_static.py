"""Static checks run inside the test suite: ruff on everything, mypy on the runtime packages,
and the rule that the runtime imports without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env
    )


def test_ruff_passes():
    result = _run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_passes_on_runtime_packages(tmp_path):
    # The repository root is the package ``sleepstream``; mypy finds it through a symlink.
    (tmp_path / "sleepstream").symlink_to(ROOT, target_is_directory=True)
    import os

    env = {**os.environ, "MYPYPATH": str(tmp_path)}
    result = _run(
        "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir",
        str(tmp_path / ".mypy_cache"), "-p", "sleepstream.engine", "-p", "sleepstream.drivers",
        "-p", "sleepstream.simulators", "-p", "sleepstream.store", "-p", "sleepstream.web",
        "-p", "sleepstream.cluster",
        cwd=tmp_path, env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_engine_and_drivers_import_without_torch():
    code = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ModuleNotFoundError('torch is blocked in this test')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "import importlib, pkgutil, sleepstream.engine as engine, sleepstream.drivers as drivers\n"
        "needs_torch = {'sleepstream.engine.inference.backends.torch'}\n"
        "for pkg in (engine, drivers):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        try:\n"
        "            importlib.import_module(m.name)\n"
        "        except ModuleNotFoundError as exc:\n"
        "            if m.name not in needs_torch or 'torch' not in str(exc):\n"
        "                raise\n"
        "from sleepstream.engine.app.cli import build_parser; build_parser()\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT.parent, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
