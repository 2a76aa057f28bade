"""PHI-safe audit logging: JSON lines, allow-listed keys, exception class names only."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from pyheart.broker.logs import configure_logging, get_logger


def last_event(caplog: pytest.LogCaptureFixture, event: str) -> dict[str, Any]:
    """The last JSON line logged by pyheart.test with ``event``."""
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "pyheart.test"]
    return [line for line in lines if line["event"] == event][-1]


def test_unknown_keys_are_dropped_by_name(caplog: pytest.LogCaptureFixture) -> None:
    """Keys outside the allow-list never reach the line; their names are recorded."""
    caplog.set_level(logging.INFO)
    get_logger("pyheart.test").info("x", plugin_id="p", payload="MSH|PID|DOE^JOHN", patient_name="DOE")
    line = last_event(caplog, "x")
    assert line["plugin_id"] == "p"
    assert line["dropped_keys"] == ["patient_name", "payload"]
    assert "DOE" not in caplog.text


def test_exception_logged_as_class_name_only(caplog: pytest.LogCaptureFixture) -> None:
    """exc_info is reduced to the exception class; its text and traceback are not logged."""
    caplog.set_level(logging.INFO)
    try:
        raise ValueError("PHI-CANARY-123 in message")
    except ValueError:
        get_logger("pyheart.test").exception("failed", plugin_id="p")
    line = last_event(caplog, "failed")
    assert line["error_type"] == "ValueError"
    assert "PHI-CANARY-123" not in caplog.text
    assert "Traceback" not in caplog.text


def test_json_lines_with_level_and_timestamp() -> None:
    """configure_logging writes one JSON object per line with level and UTC timestamp."""
    stream = io.StringIO()
    configure_logging(logging.INFO, stream)
    try:
        get_logger("pyheart.audit").info(
            "plugin.initialize", plugin_id="a", operation="initialize", outcome="success"
        )
    finally:
        logging.getLogger("pyheart").handlers.clear()
        logging.getLogger("pyheart").propagate = True
    record = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert record["level"] == "info"
    assert record["timestamp"].endswith("Z")
    assert (record["event"], record["plugin_id"], record["operation"], record["outcome"]) == (
        "plugin.initialize",
        "a",
        "initialize",
        "success",
    )


def test_library_loggers_that_print_content_are_floored(caplog: pytest.LogCaptureFixture) -> None:
    """aiokafka's DEBUG (payload dumps) and httpx's INFO (URLs with identifiers) stay off even at root DEBUG."""
    caplog.set_level(logging.DEBUG)
    get_logger("pyheart.test")
    assert not logging.getLogger("aiokafka.conn").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert not logging.getLogger("pynetdicom.dsutils").isEnabledFor(logging.INFO)
