"""The DICOM -> FHIR R4 transformer plugin, the study aggregator plugin and ``dicom_to_fhir()``."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from pyheart.broker.config import validate_config
from pyheart.broker.contracts import Format, Header, Message, TransformerPlugin
from pyheart.broker.errors import PluginConfigError, TransformError
from pyheart.broker.logs import get_logger
from pyheart.broker.plugin import PluginMetadata, PluginType
from pyheart.transformers.dicom_fhir.bundle import BundleSettings, build_bundle, study_id
from pyheart.transformers.dicom_fhir.model import DEFAULT_SYSTEM_BASE, InputItem, Instance, read_instances

_log = get_logger("pyheart.transformers.dicom_fhir")

#: Config shared by both plugins: how the Bundle is built.
BUNDLE_SCHEMA: dict[str, Any] = {
    "system_base": {
        "type": "string",
        "default": DEFAULT_SYSTEM_BASE,
        "description": "identifier system prefix for issuer namespaces (as the HL7v2 -> FHIR transformer)",
    },
    "default_issuer": {
        "type": "string",
        "default": "",
        "description": "issuer namespace for PatientIDs without IssuerOfPatientID (e.g. the site's HL7 facility)",
    },
    "dicomweb_base": {
        "type": "string",
        "default": "",
        "pattern": r"^(|https?://\S+)$",
        "description": "DICOMweb (WADO-RS) base URL; adds an Endpoint to the study and its series",
    },
    "default_utc_offset": {
        "type": "string",
        "default": "+00:00",
        "pattern": r"^(|[+-](0\d|1[0-4]):[0-5]\d)$",
        "description": "offset for DICOM times without TimezoneOffsetFromUTC ('' gives dates only)",
    },
    "patient_mode": {
        "type": "string",
        "default": "create-if-missing",
        "enum": ["create-if-missing", "upsert"],
        "description": "Patient entry: conditional create (ifNoneExist) or conditional update",
    },
}

AGGREGATOR_SCHEMA: dict[str, Any] = {
    **BUNDLE_SCHEMA,
    "quiet_seconds": {
        "type": "number",
        "default": 5.0,
        "minimum": 0,
        "description": "emit a study once no instance of it arrived for this long",
    },
    "max_instances": {
        "type": "integer",
        "default": 5000,
        "minimum": 1,
        "description": "emit a study at once when it buffers this many new instances",
    },
    "retain_seconds": {
        "type": "number",
        "default": 3600.0,
        "minimum": 0,
        "description": "remember an emitted study this long, so late instances re-emit the whole study",
    },
    "max_studies": {
        "type": "integer",
        "default": 1000,
        "minimum": 1,
        "description": "studies remembered after emission (least recently used are forgotten first)",
    },
}


def _settings(schema: Mapping[str, Any], config: Mapping[str, Any], plugin: str) -> dict[str, Any]:
    validated, issues = validate_config(schema, config)
    if issues:
        raise PluginConfigError(plugin, issues)
    return validated


def bundle_settings(config: Mapping[str, Any]) -> BundleSettings:
    """:class:`BundleSettings` from a validated config."""
    return BundleSettings(
        system_base=config["system_base"],
        default_issuer=config["default_issuer"],
        dicomweb_base=config["dicomweb_base"],
        default_utc_offset=config["default_utc_offset"] or None,
        patient_mode=config["patient_mode"],
    )


def dicom_to_fhir(
    inputs: InputItem | Iterable[InputItem], config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """DICOM Part 10 files / bytes, DICOM JSON, or Datasets -> a FHIR R4 transaction Bundle (a dict).

    ``inputs`` is one item or an iterable of them: ``bytes`` (Part 10 or DICOM JSON), a path
    (``str`` / ``Path``), a pydicom ``Dataset`` or a DICOM JSON object. Instances of one study,
    across all inputs, become one ImagingStudy.
    """
    settings = bundle_settings(_settings(BUNDLE_SCHEMA, config or {}, "dicom-to-fhir"))
    return build_bundle(read_instances(inputs), settings)


def _read_message(message: Message) -> list[Instance]:
    if message.format not in (Format.DICOM, Format.DICOM_JSON, Format.OCTET_STREAM):
        raise TransformError(
            f"unsupported input format {message.format}",
            code="dicom-unsupported-format",
            locations=["content-type"],
        )
    return read_instances(message.payload)


def _bundle_message(source: Message, bundle: dict[str, Any], study_uids: list[str]) -> Message:
    headers = {Header.CONTENT_TYPE: Format.FHIR_JSON, Header.MESSAGE_TYPE: "Bundle"}
    key = study_id(study_uids[0]).encode() if len(study_uids) == 1 else source.key
    return source.evolve(payload=orjson.dumps(bundle), format=Format.FHIR_JSON, headers=headers, key=key)


class DicomToFhir(TransformerPlugin):
    """DICOM instance(s) -> a FHIR transaction Bundle with ImagingStudy, Patient (and Endpoint)."""

    consumes: ClassVar[tuple[str, ...]] = (Format.DICOM, Format.DICOM_JSON)
    produces: ClassVar[tuple[str, ...]] = (Format.FHIR_JSON,)

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self._cached: tuple[dict[str, Any], BundleSettings] | None = None

    def get_metadata(self) -> PluginMetadata:
        """Name, version and config schema."""
        return PluginMetadata(
            name="dicom-to-fhir",
            version="1.0.0",
            plugin_type=PluginType.TRANSFORMER,
            description="DICOM Part 10 / DICOM JSON metadata to a FHIR R4 ImagingStudy transaction Bundle",
            author="PyHeart",
            config_schema=BUNDLE_SCHEMA,
        )

    def _bundle_settings(self) -> BundleSettings:
        if self._cached is None or self._cached[0] is not self.config:
            self._cached = (
                self.config,
                bundle_settings(_settings(BUNDLE_SCHEMA, self.config, "dicom-to-fhir")),
            )
        return self._cached[1]

    def transform(self, message: Message) -> Message:
        """The Bundle of the instances in ``message`` (keyed by the study, for partition affinity)."""
        instances = _read_message(message)
        bundle = build_bundle(instances, self._bundle_settings())
        studies = list(dict.fromkeys(i.study_uid for i in instances))
        return _bundle_message(message, bundle, studies)


@dataclass
class _Study:
    """Instances of one study: buffered (not yet emitted) and emitted (remembered for merging)."""

    pending: dict[str, Instance] = field(default_factory=dict)
    emitted: dict[str, Instance] = field(default_factory=dict)
    last_seen: float = 0.0
    emitted_at: float = 0.0
    source: Message | None = None


class DicomStudyAggregator(TransformerPlugin):
    """Buffers the instances of a study until it is quiet, then emits one Bundle for the study.

    A pure API for the engine: :meth:`add` a message (returns the Bundles that became ready),
    :meth:`flush_due` on a timer, :meth:`flush_all` at shutdown. Every emitted ImagingStudy holds
    all instances seen of its study (including those emitted before, remembered for
    ``retain_seconds``), so the conditional PUT of a late instance never drops earlier ones.
    Methods are synchronous and guarded by a lock: safe from coroutines and from threads.
    """

    consumes: ClassVar[tuple[str, ...]] = (Format.DICOM, Format.DICOM_JSON)
    produces: ClassVar[tuple[str, ...]] = (Format.FHIR_JSON,)
    #: Holds instances back across calls: not for one-shot offline conversion.
    buffering: ClassVar[bool] = True

    def __init__(
        self, config: dict[str, Any] | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(config)
        self._clock = clock
        self._lock = threading.Lock()
        self._studies: OrderedDict[str, _Study] = OrderedDict()
        self._cached: tuple[dict[str, Any], dict[str, Any], BundleSettings] | None = None

    def get_metadata(self) -> PluginMetadata:
        """Name, version and config schema."""
        return PluginMetadata(
            name="dicom-study-aggregator",
            version="1.0.0",
            plugin_type=PluginType.TRANSFORMER,
            description="Buffers DICOM instances per study for a quiet period, then emits one ImagingStudy Bundle",
            author="PyHeart",
            config_schema=AGGREGATOR_SCHEMA,
        )

    def _cfg(self) -> tuple[dict[str, Any], BundleSettings]:
        if self._cached is None or self._cached[0] is not self.config:
            validated = _settings(AGGREGATOR_SCHEMA, self.config, "dicom-study-aggregator")
            self._cached = (self.config, validated, bundle_settings(validated))
        return self._cached[1], self._cached[2]

    @property
    def pending_studies(self) -> int:
        """Studies with instances waiting to be emitted."""
        with self._lock:
            return sum(1 for s in self._studies.values() if s.pending)

    def add(self, message: Message, now: float | None = None) -> list[Message]:
        """Buffer the instances of ``message``; return Bundles that are ready (size cap reached)."""
        cfg, _ = self._cfg()
        instances = _read_message(message)
        moment = self._clock() if now is None else now
        ready: list[str] = []
        with self._lock:
            for inst in instances:
                study = self._studies.get(inst.study_uid)
                if study is None:
                    study = self._studies[inst.study_uid] = _Study()
                self._studies.move_to_end(inst.study_uid)
                study.pending[inst.sop_uid] = inst
                study.last_seen = moment
                study.source = message
                if len(study.pending) >= cfg["max_instances"] and inst.study_uid not in ready:
                    ready.append(inst.study_uid)
            out = [self._emit(uid, moment) for uid in ready]
            self._forget(moment, cfg)
        return out

    def flush_due(self, now: float | None = None) -> list[Message]:
        """Bundles of the studies that have been quiet for ``quiet_seconds``."""
        cfg, _ = self._cfg()
        moment = self._clock() if now is None else now
        with self._lock:
            due = [
                uid
                for uid, s in self._studies.items()
                if s.pending and moment - s.last_seen >= cfg["quiet_seconds"]
            ]
            out = [self._emit(uid, moment) for uid in due]
            self._forget(moment, cfg)
        return out

    def flush_all(self) -> list[Message]:
        """Bundles of every study with buffered instances (at shutdown)."""
        moment = self._clock()
        with self._lock:
            return [self._emit(uid, moment) for uid, s in list(self._studies.items()) if s.pending]

    def transform(self, message: Message) -> list[Message] | None:
        """The engine's one-message entry point: :meth:`add`, plus any other study now due."""
        out = self.add(message)
        out.extend(self.flush_due())
        return out or None

    def _emit(self, study_uid: str, moment: float) -> Message:
        _, settings = self._cfg()
        study = self._studies[study_uid]
        study.emitted.update(study.pending)
        study.pending.clear()
        study.emitted_at = moment
        bundle = build_bundle(list(study.emitted.values()), settings)
        assert study.source is not None  # set by add() before any emission
        _log.debug("study emitted", plugin_name="dicom-study-aggregator", count=len(study.emitted))
        return _bundle_message(study.source, bundle, [study_uid])

    def _forget(self, moment: float, cfg: Mapping[str, Any]) -> None:
        for uid in [
            uid
            for uid, s in self._studies.items()
            if not s.pending and moment - s.emitted_at >= cfg["retain_seconds"]
        ]:
            del self._studies[uid]
        idle = [uid for uid, s in self._studies.items() if not s.pending]
        while len(idle) > cfg["max_studies"]:
            del self._studies[idle.pop(0)]

    async def cleanup(self) -> bool:
        """Forget every buffered study (the engine flushes with :meth:`flush_all` before stopping)."""
        with self._lock:
            self._studies.clear()
        return True


__all__ = [
    "AGGREGATOR_SCHEMA",
    "BUNDLE_SCHEMA",
    "DicomStudyAggregator",
    "DicomToFhir",
    "bundle_settings",
    "dicom_to_fhir",
]
