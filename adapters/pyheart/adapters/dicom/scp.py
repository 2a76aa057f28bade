"""DICOM C-STORE SCP adapter: DICOM instances in, their metadata on a Kafka topic.

Each received instance's metadata is published as DICOM JSON (PS3.18 F.2) keyed by StudyInstanceUID, so
one study's instances stay in order on one partition. Pixel data and other bulk binary elements never go
to Kafka: when ``pixel_data_dir`` is configured the whole Part 10 instance is written there first and the
JSON references it through ``BulkDataURI`` (a claim check); otherwise bulk data is dropped.

The C-STORE response is sent only after Kafka acknowledged the record (``acks=all``); when Kafka or the
disk fails the peer gets ``0xA700`` (out of resources) and can retry, so nothing is acknowledged and lost.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import secrets
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import AE, AllStoragePresentationContexts, evt

from pyheart.adapters._delivery import idempotent_producer, security_fields, start_all
from pyheart.broker.contracts import Format, Header
from pyheart.broker.logs import get_logger
from pyheart.broker.plugin import Plugin, PluginMetadata, PluginType

#: C-STORE statuses (PS3.4 Annex B.2.3 / PS3.7 C.4.2.1.4).
STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)
_BULK_THRESHOLD = 1024


def _traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


class DicomStoreScp(Plugin):
    """A C-STORE SCP publishing each instance's metadata (no pixel data) to Kafka."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self._ae: AE | None = None
        self._server: Any = None
        self._producer: AIOKafkaProducer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._log = get_logger("pyheart.adapters.dicom")
        self.port: int | None = None

    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata(
            name="dicom-store-scp",
            version="0.1.0",
            plugin_type=PluginType.ADAPTER,
            description="DICOM C-STORE SCP: instance metadata (DICOM JSON) to Kafka, pixel data by claim check",
            author="PyHeart",
            config_schema={
                "bootstrap_servers": {"type": "string", "required": True},
                **security_fields(),
                "topic": {"type": "string", "required": True, "pattern": r"^[A-Za-z0-9._-]{1,249}$"},
                "ae_title": {"type": "string", "default": "PYHEART", "pattern": r"^[ -\[\]-~]{1,16}$"},
                "host": {"type": "string", "default": "127.0.0.1"},
                "port": {"type": "integer", "default": 11112, "minimum": 0, "maximum": 65535},
                "allowed_calling_aets": {"type": "array", "default": [], "items": {"type": "string"}},
                "sop_classes": {
                    "type": "array",
                    "default": [],
                    "items": {"type": "string", "pattern": r"^[0-9.]+$"},
                    "description": "accepted storage SOP class UIDs; empty accepts every storage class",
                },
                "pixel_data_dir": {
                    "type": "string",
                    "description": "claim-check directory for whole instances",
                },
                "kafka_timeout_s": {"type": "number", "default": 30, "minimum": 1, "maximum": 600},
                "maximum_pdu_size": {"type": "integer", "default": 0, "minimum": 0},
            },
        )

    async def initialize(self) -> bool:
        if self._server is not None:
            return True
        self._loop = asyncio.get_running_loop()
        producer = idempotent_producer(
            self.config["bootstrap_servers"], security=self.config, max_request_size=8 * 1024 * 1024
        )
        await start_all(producer)
        self._producer = producer
        ae = AE(ae_title=self.config["ae_title"])
        wanted = set(self.config["sop_classes"])
        for context in AllStoragePresentationContexts:
            syntax = context.abstract_syntax
            if syntax is not None and (not wanted or syntax in wanted):
                ae.add_supported_context(syntax, context.transfer_syntax)
        if self.config["allowed_calling_aets"]:
            ae.require_calling_aet = list(self.config["allowed_calling_aets"])
        ae.maximum_pdu_size = self.config["maximum_pdu_size"]
        self._ae = ae
        self._server = ae.start_server(
            (self.config["host"], self.config["port"]),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, self._on_store)],
        )
        self.port = int(self._server.server_address[1])
        self._log.info(
            "adapter.started",
            plugin_name="dicom-store-scp",
            listen=f"{self.config['host']}:{self.port}",
            topic=self.config["topic"],
        )
        return True

    async def cleanup(self) -> bool:
        if self._server is not None:
            server, self._server = self._server, None
            await asyncio.to_thread(server.shutdown)
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()
        return True

    # ------------------------------------------------------------------------------------ C-STORE
    def _on_store(self, event: Any) -> int:
        """pynetdicom calls this in its association thread; we block it until Kafka acknowledges."""
        peer = f"{event.assoc.requestor.address}:{event.assoc.requestor.port}"
        calling = str(event.assoc.requestor.ae_title).strip()
        try:
            ds: Dataset = event.dataset
            ds.file_meta = event.file_meta
        except Exception as exc:
            self._log.warning("dicom.store", peer=peer, outcome="rejected", error_type=type(exc).__name__)
            return STATUS_CANNOT_UNDERSTAND
        study = str(getattr(ds, "StudyInstanceUID", ""))
        instance = str(getattr(ds, "SOPInstanceUID", ""))
        series = str(getattr(ds, "SeriesInstanceUID", ""))
        if not (_UID.match(study) and _UID.match(instance) and _UID.match(series)):
            self._log.warning("dicom.store", peer=peer, outcome="rejected", error_code="dicom-uid-invalid")
            return STATUS_CANNOT_UNDERSTAND
        try:
            claim = self._write_claim(event, study, series, instance)
            payload = self._metadata_json(ds, claim)
        except OSError as exc:
            self._log.error(
                "dicom.store", peer=peer, outcome="failure", stage="intake", error_type=type(exc).__name__
            )
            return STATUS_OUT_OF_RESOURCES
        except Exception as exc:
            self._log.warning("dicom.store", peer=peer, outcome="rejected", error_type=type(exc).__name__)
            return STATUS_CANNOT_UNDERSTAND
        sop_class = str(getattr(ds, "SOPClassUID", ""))
        message_id = str(uuid.uuid4())
        headers = [
            (Header.MESSAGE_ID, message_id),
            (Header.CONTENT_TYPE, Format.DICOM_JSON),
            (Header.SOURCE, f"dicom:{calling}"),
            (Header.MESSAGE_TYPE, "DICOM"),
            (Header.TRIGGER, _sop_keyword(sop_class)),
            (Header.CORRELATION_ID, message_id),
            (Header.TRACEPARENT, _traceparent()),
            (Header.RECEIVED_AT, dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")),
            (Header.PEER, peer),
        ]
        if self._producer is None or self._loop is None:
            return STATUS_OUT_OF_RESOURCES
        future = asyncio.run_coroutine_threadsafe(
            self._producer.send_and_wait(
                self.config["topic"],
                value=payload,
                key=study.encode(),
                headers=[(k, v.encode()) for k, v in headers],
            ),
            self._loop,
        )
        try:
            meta = future.result(timeout=float(self.config["kafka_timeout_s"]))
        except Exception as exc:
            future.cancel()
            self._log.error(
                "dicom.store",
                peer=peer,
                message_id=message_id,
                outcome="failure",
                stage="produce",
                error_type=type(exc).__name__,
            )
            return STATUS_OUT_OF_RESOURCES
        self._log.info(
            "dicom.store",
            peer=peer,
            message_id=message_id,
            topic=meta.topic,
            partition=meta.partition,
            offset=meta.offset,
            outcome="success",
        )
        return STATUS_SUCCESS

    def _write_claim(self, event: Any, study: str, series: str, instance: str) -> str | None:
        base = self.config.get("pixel_data_dir")
        if not base:
            return None
        folder = Path(base) / study / series
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{instance}.dcm"
        partial = folder / f".{instance}.{secrets.token_hex(4)}.part"
        partial.write_bytes(event.encoded_dataset(include_meta=True))
        partial.replace(target)  # atomic: a reader never sees half an instance
        return target.resolve().as_uri()

    @staticmethod
    def _metadata_json(ds: Dataset, claim: str | None) -> bytes:
        body = _without_bulk(ds).to_json_dict()
        if claim is not None:
            body["7FE00010"] = {"vr": "OW", "BulkDataURI": claim}
        file_meta = getattr(ds, "file_meta", None)
        if file_meta is not None and "TransferSyntaxUID" in file_meta:
            body["00020010"] = {"vr": "UI", "Value": [str(file_meta.TransferSyntaxUID)]}
        return orjson.dumps(body)


def _without_bulk(ds: Dataset) -> Dataset:
    """A copy of ``ds`` without pixel data and without binary elements over the bulk threshold (nested too)."""
    out = Dataset()
    for element in ds:
        if element.tag in _PIXEL_TAGS:
            continue
        if element.VR in _BULK_VRS and element.value is not None and len(element.value) > _BULK_THRESHOLD:
            continue
        if element.VR == "SQ":
            copy = DataElement(element.tag, "SQ", [_without_bulk(item) for item in element.value or []])
            out.add(copy)
            continue
        out.add(element)
    return out


def _sop_keyword(uid: str) -> str:
    keyword = UID(uid).keyword if uid else ""
    return keyword or uid or "unknown"


__all__ = ["STATUS_CANNOT_UNDERSTAND", "STATUS_OUT_OF_RESOURCES", "STATUS_SUCCESS", "DicomStoreScp"]
