"""The ``[cluster]`` table: parsed, defaulted, and refused with one clear line when wrong."""

from __future__ import annotations

import pytest

from sleepstream.engine.config import ClusterSection, parse_config
from sleepstream.engine.errors import ConfigError


def test_cluster_table_is_parsed_and_optional() -> None:
    assert parse_config({}).cluster == ClusterSection()
    c = parse_config({"cluster": {"address": "ray://head:10001", "dead_after_s": 5}}).cluster
    assert c.address == "ray://head:10001" and c.dead_after_s == 5.0 and c.heartbeat_s == 0.5


@pytest.mark.parametrize("table", [{"heartbeat_s": 0}, {"dead_after_s": 0.1}, {"vnodes": 0},
                                   {"nodes": 3}])
def test_bad_cluster_table_is_one_clear_problem(table: dict) -> None:
    with pytest.raises(ConfigError, match="cluster"):
        parse_config({"cluster": table})
