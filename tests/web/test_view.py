"""The web view's state: the engine's running indices are kept per bed and broadcast."""

from __future__ import annotations

import json

from sleepstream.web.view import ViewState


def test_running_indices_are_kept_per_bed_and_broadcast():
    view = ViewState([("bed-1", "ward"), ("bed-2", "ward")], wall_origin=None)
    q = view.subscribe()
    assert view.bed_view("bed-1")["indices"] is None  # nothing yet: "waiting for data"
    view.apply({"type": "index", "bed": "bed-1", "t": 660.0, "odi3": 12.5, "odi4": 8.0,
                "ahi": None, "apnea_minutes_per_hour": 20.0, "extra": "dropped"})
    view.apply({"type": "index", "bed": "bed-9", "t": 660.0, "odi3": 1.0})  # not a bed here
    tile = view.bed_view("bed-1")
    assert tile["indices"] == {"t": 660.0, "odi3": 12.5, "odi4": 8.0, "ahi": None,
                               "apnea_minutes_per_hour": 20.0}
    assert view.bed_view("bed-2")["indices"] is None
    name, payload = q.get_nowait()
    assert name == "index" and json.loads(payload) == {"bed": "bed-1",
                                                       "indices": tile["indices"]}
    assert q.empty()
    view.apply({"type": "index", "bed": "bed-1", "t": 720.0, "odi3": 13.0, "odi4": 8.5,
                "ahi": None, "apnea_minutes_per_hour": 21.0})
    assert view.bed_view("bed-1")["indices"]["odi3"] == 13.0  # the latest one
