"""The shared conformance suite, run on every built-in HL7 v2 / FHIR validator plugin."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from pyheart.broker.config import check_schema
from pyheart.broker.contracts import Format, Message, ValidationReport, ValidatorPlugin
from pyheart.broker.errors import PluginConfigError
from pyheart.broker.logs import configure_logging
from pyheart.broker.plugin import PluginType
from pyheart.broker.registry import PluginRegistry

NAMES = ["hl7v2-structure", "hl7v2-strict", "fhir-structure", "business-rules"]
CANARY = "QZXCANARY7731"

HL7_GOOD = (
    "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101120000||ADT^A01^ADT_A01|CTRL1|P|2.5\r"
    "EVN|A01|20240101120000\r"
    f"PID|1||{CANARY}^^^HOSP^MR||{CANARY}^John||19800101|M\r"
    "PV1|1|I\r"
)
HL7_BAD = (
    f"MSH|^~\\&|{CANARY}|FAC|RCV|RFAC|20240101120000||ADT^A01|{CANARY}|X|2.5\r"
    f"PID|{CANARY}||||{CANARY}||{CANARY}|{CANARY}\r"
    f"OBX|1|NM|x||{CANARY}\r"
)
HL7_BROKEN = f"MSH|^~\\&|{CANARY}\r{CANARY} broken line|x\r"
FHIR_BAD = {
    "resourceType": "Bundle",
    "type": "batch",
    "entry": [
        {"resource": {"resourceType": "Patient", "birthDate": CANARY, "gender": CANARY, CANARY: 1}},
        {"resource": {"resourceType": "Observation", "status": CANARY, "valueString": CANARY}},
    ],
}
RULES = {
    "rules": [
        {"id": "mrn", "location": "PID-3.1", "pattern": "^[0-9]+$", "required": True},
        {"id": "sex", "location": "PID-8", "enum": ["F", "M"]},
        {"id": "birth", "location": "Patient.birthDate", "pattern": "^[0-9-]+$"},
        {"id": "gender", "location": "Patient.gender", "enum": ["male", "female"]},
    ]
}
CONFIGS = {"business-rules": RULES}


def _class(name: str) -> type[ValidatorPlugin]:
    cls = PluginRegistry().resolve_class(name)
    assert issubclass(cls, ValidatorPlugin)
    return cls


def _plugin(name: str) -> ValidatorPlugin:
    return _class(name)(config=json.loads(json.dumps(CONFIGS.get(name, {}))))


def _messages() -> list[Message]:
    return [
        Message(HL7_GOOD.encode(), Format.HL7V2, {"pyheart-message-id": "m1"}),
        Message(HL7_BAD.encode(), Format.HL7V2),
        Message(HL7_BROKEN.encode(), Format.HL7V2),
        Message(json.dumps(FHIR_BAD).encode(), Format.FHIR_JSON),
        Message(b'{"resourceType": "Patient", "birthDate": "' + CANARY.encode(), Format.FHIR_JSON),
    ]


@pytest.mark.parametrize("name", NAMES)
def test_metadata_complete(name: str) -> None:
    """Metadata names the plugin as its entry point, with version, type, description, valid schema."""
    meta = _plugin(name).get_metadata()
    assert (meta.name, meta.plugin_type) == (name, PluginType.VALIDATOR)
    assert meta.version
    assert meta.description
    assert meta.author
    assert check_schema(meta.config_schema) == []


@pytest.mark.parametrize("name", NAMES)
def test_config_rejects_unknown_keys(name: str) -> None:
    """The registry refuses a config with a key the schema does not declare, naming the key."""
    plugin = _class(name)(config={"no_such_option": 1})
    with pytest.raises(PluginConfigError) as caught:
        PluginRegistry().register_plugin("v", plugin)
    assert str(caught.value) == "plugin 'v': invalid config: no_such_option: unknown key [unknown]"


@pytest.mark.parametrize("name", NAMES)
def test_direct_use_rejects_unknown_keys(name: str) -> None:
    """Used without a registry, the plugin still validates its config before the first message."""
    plugin = _class(name)(config={"no_such_option": 1})
    with pytest.raises(PluginConfigError) as caught:
        plugin.validate(_messages()[0])
    assert "no_such_option: unknown key" in str(caught.value)


@pytest.mark.parametrize("name", NAMES)
async def test_lifecycle_idempotent(name: str) -> None:
    """initialize and cleanup may each be called twice, through the registry and directly."""
    registry = PluginRegistry()
    plugin = _plugin(name)
    assert registry.register_plugin("v", plugin)
    assert await registry.initialize_all() == {"v": True}
    assert await registry.initialize_all() == {"v": True}
    await registry.cleanup_all()
    await registry.cleanup_all()
    assert [await plugin.initialize(), await plugin.initialize()] == [True, True]
    assert [await plugin.cleanup(), await plugin.cleanup()] == [True, True]


@pytest.mark.parametrize("name", NAMES)
def test_no_input_mutation(name: str) -> None:
    """Validating leaves the message's payload, headers and key untouched."""
    plugin = _plugin(name)
    for message in _messages():
        headers = dict(message.headers)
        payload = bytes(message.payload)
        plugin.validate(message)
        assert (message.payload, dict(message.headers), message.key) == (payload, headers, None)


@pytest.mark.parametrize("name", NAMES)
def test_other_formats_pass(name: str) -> None:
    """A format the validator does not accept passes with an empty report."""
    report = _plugin(name).validate(Message(b"\x00\x01", Format.DICOM))
    assert (report.issues, report.ok, report.validator) == ((), True, name)


@pytest.mark.parametrize("name", NAMES)
def test_reports_are_reports(name: str) -> None:
    """Every message yields a ValidationReport whose issues carry code, location and text."""
    plugin = _plugin(name)
    for message in _messages():
        report = plugin.validate(message)
        assert isinstance(report, ValidationReport)
        assert all(i.code and i.location and i.message for i in report.issues)


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """PyHeart's JSON log lines, captured; the logger's previous state is restored after."""
    logger = logging.getLogger("pyheart")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    stream = io.StringIO()
    configure_logging(logging.DEBUG, stream)
    yield stream
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


@pytest.mark.parametrize("name", NAMES)
async def test_no_phi_in_reports_or_logs(name: str, log_stream: io.StringIO) -> None:
    """A canary value in every message appears in no issue, OperationOutcome or log line."""
    stream = log_stream
    registry = PluginRegistry()
    plugin = _plugin(name)
    registry.register_plugin("v", plugin)
    await registry.initialize_all()
    seen = []
    for message in _messages():
        report = plugin.validate(message)
        seen.append(json.dumps(report.to_operation_outcome()))
        seen.extend(f"{i.code} {i.location} {i.message} {i.fhir_code}" for i in report.issues)
    await registry.cleanup_all()
    assert any(seen)
    assert CANARY not in " ".join(seen)
    assert CANARY not in stream.getvalue()


@pytest.mark.parametrize("name", NAMES)
def test_canary_config_errors(name: str) -> None:
    """Config errors name paths and rules, not the values given."""
    plugin = _class(name)(config={CANARY.lower(): CANARY})
    with pytest.raises(PluginConfigError) as caught:
        plugin.validate(_messages()[0])
    assert CANARY not in str(caught.value)
