"""Structured logs: one JSON object per line with the event's fields."""

import io
import json
import logging

from suanli.service.logs import JsonFormatter, configure


def test_json_lines_carry_the_fields_passed_in_extra() -> None:
    root = logging.getLogger("suanli")
    saved = (list(root.handlers), root.propagate, root.level)
    try:
        check_json_lines()
    finally:
        root.handlers[:], root.propagate, root.level = saved[0], saved[1], saved[2]


def check_json_lines() -> None:
    configure("json", "info")
    stream = io.StringIO()
    handler = logging.getLogger("suanli").handlers[0]
    assert isinstance(handler.formatter, JsonFormatter)
    handler.setStream(stream)  # type: ignore[attr-defined]
    logging.getLogger("suanli.controller").info(
        "admitted %s", "j1", extra={"event": "job.admit", "job": "j1", "attempt": 1}
    )
    logging.getLogger("suanli.other").debug("not at info")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert rec["msg"] == "admitted j1" and rec["level"] == "info"
    assert rec["logger"] == "suanli.controller"
    assert (rec["event"], rec["job"], rec["attempt"]) == ("job.admit", "j1", 1)
    assert rec["ts"].endswith("Z")
