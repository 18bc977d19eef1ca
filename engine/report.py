"""Shared output helpers for ``bench`` and ``evaluate`` commands.

With ``--json`` a command ends its output with exactly one JSON object on its own line: its
figures under plain names, and ``goal_<name>`` next to a figure where a goal exists.
"""

from __future__ import annotations

import json
import math
from typing import Any


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _clean(value.item())
    return value


def json_line(figures: dict[str, Any]) -> str:
    """The one-line JSON object a ``--json`` run prints last."""
    return json.dumps(_clean(figures), separators=(",", ":"), sort_keys=False)


def print_figures(figures: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json_line(figures), flush=True)
