"""Checks of a configuration against the machine it runs on: files that must exist or be
creatable, addresses that must parse. ``engine.config`` runs them while it validates a file;
each appends ``(where, what to fix)`` to ``problems``."""

from __future__ import annotations

import os
from pathlib import Path

from sleepstream.engine.config_sections import BedConfig, MqttSection

Problems = list[tuple[str, str]]


def is_listen(listen: str) -> bool:
    """``HOST:PORT``, ``:PORT``, ``PORT`` or ``[::1]:PORT``, as the web server reads it."""
    port = listen.rpartition(":")[2]
    return port.isdigit() and int(port) <= 65535


def check_files(mqtt: MqttSection | None, problems: Problems) -> None:
    """TLS files must be there before a client tries them (relative to the working folder)."""
    if mqtt is None:
        return
    for key in ("ca_file", "cert_file", "key_file"):
        name = getattr(mqtt, key)
        if name is not None and not (Path(name).is_file() and os.access(name, os.R_OK)):
            problems.append((f"mqtt.{key}", f"{name} is not a readable file"))


def check_recordings(beds: list[BedConfig], path: Path | None, problems: Problems) -> None:
    """Every EDF source names an existing file (relative paths: next to the config file)."""
    base = path.parent if path is not None else Path.cwd()
    for i, bed in enumerate(beds):
        for j, src in enumerate(bed.sources):
            if src.kind != "edf" or not isinstance(src.options.get("path"), str):
                continue
            file = Path(src.options["path"])
            file = file if file.is_absolute() else base / file
            if not file.is_file():
                what = "is a directory" if file.is_dir() else "does not exist"
                problems.append((f"beds[{i}].sources[{j}].path", f"{file} {what}; give an EDF "
                                 "file (relative paths are read next to the config file)"))


def check_writable(path: Path, where: str, problems: Problems) -> None:
    """A sink's file must be creatable: no folder, and the nearest existing folder above it (the
    sink creates the missing ones) is a writable folder."""
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if path.is_dir():
        problems.append((where, f"{path} is a directory; give a file name"))
    elif not folder.is_dir():
        problems.append((where, f"{folder} is not a folder; {path} cannot be created"))
    elif not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        problems.append((where, f"{path} is not writable (check the folder's permissions)"))
