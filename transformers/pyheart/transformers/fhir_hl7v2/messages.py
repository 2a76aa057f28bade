"""Assembling HL7 v2 messages from the resources of one FHIR input.

An input with a MessageHeader whose ``eventCoding`` is an HL7 table 0003 event (a FHIR message,
or a Bundle converted from HL7 v2) becomes that one message, with every resource as its segments.
Otherwise, which messages an input yields (first match per resource, in this order):

* DiagnosticReport / Observation (with ServiceRequest, Specimen) -> ORU^R01, one per patient;
* Immunization -> VXU^V04, one per patient;
* Appointment -> SIU^S12, one per appointment;
* ServiceRequest not already reported on -> ORM^O01 or OML^O21, one per patient;
* Encounter not already carried as PV1 -> ADT^A01/A02/A03/A04/A08 (by status, class and
  locations; see :meth:`MessageBuilder.encounter_event`);
* Patient not already carried as PID -> ADT^A04/A08/A31 (configurable), with NK1 (RelatedPerson)
  and IN1 (Coverage).

Segment order follows each message structure of the standard (checked with hl7apy in tests).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyheart.broker.errors import TransformError
from pyheart.broker.hl7v2 import DEFAULT_DELIMITERS
from pyheart.transformers.fhir_hl7v2 import segments as sg
from pyheart.transformers.fhir_hl7v2.er7 import Rep, Seg, code_of, dtm, ei, first, obj
from pyheart.transformers.fhir_hl7v2.limits import segment_shape
from pyheart.transformers.fhir_hl7v2.segments import Context, Resource

SUPPORTED_VERSIONS = ("2.5", "2.5.1", "2.6")
PATIENT_EVENTS = ("A04", "A08", "A31")
ENCOUNTER_EVENTS = ("auto", "A01", "A02", "A03", "A04", "A08")
ORDER_MESSAGES = ("ORM^O01", "OML^O21")

#: Trigger event to message structure (MSH-9.3).
STRUCTURE: dict[str, str] = {
    "A01": "ADT_A01",
    "A02": "ADT_A02",
    "A03": "ADT_A03",
    "A04": "ADT_A01",
    "A05": "ADT_A05",
    "A08": "ADT_A01",
    "A13": "ADT_A01",
    "A14": "ADT_A05",
    "A28": "ADT_A05",
    "A31": "ADT_A05",
}
#: Encounter classes (v3 ActCode) of visits that are registered (A04) rather than admitted (A01).
_REGISTERED_CLASSES = frozenset({"AMB", "EMER", "FLD", "HH", "VR", "SS"})
#: ADT structures that carry NK1 and IN1 segments.
_ADT_WITH_NK1_IN1 = frozenset({"ADT_A01", "ADT_A03", "ADT_A05"})


@dataclass(frozen=True)
class Settings:
    """What the emitted messages look like (the plugin's validated config)."""

    version: str = "2.5.1"
    sending_application: str = "PYHEART"
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    processing_id: str = "P"
    patient_event: str = "A04"
    encounter_event: str = "auto"
    order_message: str = "ORM^O01"
    charset: str = "UNICODE UTF-8"

    @property
    def ce_width(self) -> int:
        """Coded fields are CE (6 components) before v2.6 and CWE (9) from v2.6 on."""
        return 9 if self.version >= "2.6" else 6


def new_control_id() -> str:
    """A unique MSH-10 (20 characters: the ST length limit of 2.5.1)."""
    return uuid.uuid4().hex[:20]


def utc_now() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S%z")


def _subject_ref(resource: Resource, ctx: Context) -> Any:
    """The reference to the patient a resource is about."""
    rtype = resource.get("resourceType")
    if rtype == "Immunization":
        return resource.get("patient")
    if rtype == "Coverage":
        return resource.get("beneficiary")
    if rtype == "RelatedPerson":
        return resource.get("patient")
    if rtype == "Appointment":
        for part in resource.get("participant") or []:
            actor = part.get("actor") if isinstance(part, Mapping) else None
            if not isinstance(actor, Mapping):
                continue
            ref = actor.get("reference")
            if ctx.resolve(actor, "Patient") is not None or actor.get("type") == "Patient":
                return actor
            if isinstance(ref, str) and ref.split("/")[-2:-1] == ["Patient"]:
                return actor
        return None
    return resource.get("subject")


class _Patient:
    """The patient a group of resources is about: the resource when present, else the reference."""

    def __init__(self, ctx: Context, reference: Any) -> None:
        self.reference = reference
        self.resource = ctx.resolve(reference, "Patient")
        if self.resource is None and reference is None:
            # A resource without a subject in an input about exactly one patient is about them.
            patients = ctx.of_type("Patient")
            if len(patients) == 1:
                self.resource = patients[0]

    @property
    def key(self) -> object:
        """What groups resources about the same patient."""
        if self.resource is not None:
            return ("resource", id(self.resource))
        if isinstance(self.reference, Mapping):
            return (
                "reference",
                str(self.reference.get("reference") or ""),
                str(self.reference.get("identifier")),
            )
        return ("none",)


class MessageBuilder:
    """Turns the resources of one input into ER7 messages."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], datetime] = utc_now,
        control_id: Callable[[], str] = new_control_id,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._control_id = control_id

    # ---------------------------------------------------------------------------------- framing
    def _msh(self, mtype: str, trigger: str, structure: str) -> Seg:
        s = self.settings
        seg = Seg("MSH")
        seg[3] = [s.sending_application] if s.sending_application else None
        seg[4] = [s.sending_facility] if s.sending_facility else None
        seg[5] = [s.receiving_application] if s.receiving_application else None
        seg[6] = [s.receiving_facility] if s.receiving_facility else None
        seg[7] = _ts(self._clock())
        seg[9] = [mtype, trigger, structure]
        seg[10] = self._control_id()
        seg[11] = s.processing_id
        seg[12] = s.version
        seg[18] = s.charset
        return seg

    def _evn(self, trigger: str, occurred: str = "") -> Seg:
        seg = Seg("EVN")
        seg[1] = trigger if self.settings.version < "2.6" else ""
        seg[2] = _ts(self._clock())
        seg[6] = occurred
        return seg

    def _render(self, segs: list[Seg | None]) -> str:
        version = self.settings.version
        return (
            "\r".join(
                s.render(DEFAULT_DELIMITERS, segment_shape(version, s.name)) for s in segs if s is not None
            )
            + "\r"
        )

    # ---------------------------------------------------------------------------------- selection
    def build(self, ctx: Context) -> list[str]:
        """Every message the input yields (see the module docstring for the order)."""
        used: set[int] = set()
        out: list[str] = self._by_event(ctx, used)
        if out:
            return out
        out.extend(self._results(ctx, used))
        out.extend(self._immunizations(ctx, used))
        out.extend(self._appointments(ctx, used))
        out.extend(self._orders(ctx, used))
        out.extend(self._encounters(ctx, used))
        out.extend(self._patients(ctx, used))
        if not out:
            kinds = sorted({str(r.get("resourceType")) for r in ctx.resources})
            raise TransformError(
                "no resource in the input maps to an HL7 v2 message (expected Patient, Encounter, "
                "Observation, DiagnosticReport, ServiceRequest, Immunization or Appointment)",
                code="fhir-no-mappable-resource",
                locations=kinds,
            )
        return out

    def _by_event(self, ctx: Context, used: set[int]) -> list[str]:
        """A FHIR message (or a converted HL7 message) whose MessageHeader names a v2 event: that
        one message type, with every resource of the input as its segments."""
        event = message_event(ctx)
        if event is None:
            return []
        mtype, trigger = event
        if mtype == "ADT" and trigger in STRUCTURE:
            patients = ctx.of_type("Patient")
            encounters = ctx.of_type("Encounter")
            if not patients and not encounters:
                return []
            encounter = encounters[0] if encounters else None
            patient = _Patient(ctx, encounter.get("subject") if encounter is not None else None)
            if patient.resource is None and patients:
                patient.resource = patients[0]
            return [self._adt(ctx, trigger, patient, encounter, used, observations=True)]
        if mtype == "SIU" and trigger.startswith("S"):
            # S12..S26 (new, rescheduled, modified, cancelled ... appointments) share SIU_S12.
            return self._appointments(ctx, used, trigger)
        produce = {"ORU": self._results, "VXU": self._immunizations}.get(mtype)
        if produce is not None:
            return produce(ctx, used)
        if mtype in ("ORM", "OML"):
            return self._orders(ctx, used, oml=mtype == "OML", all_requests=True)
        return []

    def _group_by_patient(
        self, ctx: Context, resources: list[Resource]
    ) -> list[tuple[_Patient, list[Resource]]]:
        groups: dict[object, tuple[_Patient, list[Resource]]] = {}
        for resource in resources:
            patient = _Patient(ctx, _subject_ref(resource, ctx))
            groups.setdefault(patient.key, (patient, []))[1].append(resource)
        return list(groups.values())

    def _mark(self, used: set[int], *resources: Resource | None) -> None:
        for r in resources:
            if r is not None:
                used.add(id(r))

    def _patient_block(
        self, ctx: Context, patient: _Patient, used: set[int], with_nk1: bool = False
    ) -> list[Seg | None]:
        self._mark(used, patient.resource)
        segs: list[Seg | None] = [sg.pid(patient.resource, patient.reference)]
        if with_nk1 and patient.resource is not None:
            related = [
                r for r in ctx.of_type("RelatedPerson") if ctx.resolve(r.get("patient")) is patient.resource
            ]
            for i, person in enumerate(related, start=1):
                self._mark(used, person)
                segs.append(sg.nk1(person, i))
        return segs

    def _insurance(self, ctx: Context, patient: _Patient, used: set[int]) -> list[Seg | None]:
        if patient.resource is None:
            return []
        coverages = [
            c for c in ctx.of_type("Coverage") if ctx.resolve(c.get("beneficiary")) is patient.resource
        ]
        segs: list[Seg | None] = []
        for i, coverage in enumerate(coverages, start=1):
            self._mark(used, coverage)
            segs.append(sg.in1(coverage, i, ctx))
        return segs

    def _visit(self, ctx: Context, resources: list[Resource], used: set[int]) -> list[Seg | None]:
        for resource in resources:
            encounter = ctx.resolve(resource.get("encounter"), "Encounter")
            if encounter is not None:
                self._mark(used, encounter)
                return [sg.pv1(encounter, ctx), sg.pv2(encounter)]
        return []

    # ---------------------------------------------------------------------------------- ORU^R01
    def _results(self, ctx: Context, used: set[int]) -> list[str]:
        reports = ctx.of_type("DiagnosticReport")
        observations = ctx.of_type("Observation")
        if not reports and not observations:
            return []
        w = self.settings.ce_width
        in_report: set[int] = set()
        for report in reports:
            for ref in report.get("result") or []:
                target = ctx.resolve(ref, "Observation")
                if target is not None:
                    in_report.add(id(target))
        loose = [o for o in observations if id(o) not in in_report]
        messages = []
        for patient, group in self._group_by_patient(ctx, [*reports, *loose]):
            segs: list[Seg | None] = [self._msh("ORU", "R01", "ORU_R01")]
            segs += self._patient_block(ctx, patient, used)
            segs += self._visit(ctx, group, used)
            for obr_id, resource in enumerate(group, start=1):
                self._mark(used, resource)
                is_report = resource.get("resourceType") == "DiagnosticReport"
                request = ctx.resolve(first(resource.get("basedOn")), "ServiceRequest")
                self._mark(used, request)
                specimen_refs = resource.get("specimen") or []
                if not is_report and resource.get("specimen"):
                    specimen_refs = [resource["specimen"]]
                specimens = [s for s in (ctx.resolve(r, "Specimen") for r in specimen_refs) if s is not None]
                segs.append(sg.orc(request, ctx, control="RE", report=resource if is_report else None))
                segs.append(
                    sg.obr(
                        obr_id,
                        ctx,
                        request=request,
                        report=resource if is_report else None,
                        code=None if is_report else resource.get("code"),
                        specimen=first(specimens),
                        ce_width=w,
                    )
                )
                if is_report and resource.get("conclusion"):
                    segs.append(sg.nte(1, str(resource["conclusion"])))
                obs_list = (
                    [o for o in (ctx.resolve(r, "Observation") for r in resource.get("result") or []) if o]
                    if is_report
                    else [resource]
                )
                segs += self._obx_block(ctx, obs_list, used)
                for i, specimen in enumerate(specimens, start=1):
                    self._mark(used, specimen)
                    segs.append(sg.spm(specimen, i))
            messages.append(self._render(segs))
        return messages

    def _obx_block(self, ctx: Context, observations: list[Resource], used: set[int]) -> list[Seg | None]:
        w = self.settings.ce_width
        segs: list[Seg | None] = []
        set_id = 0
        for sub, obs in enumerate(observations, start=1):
            if sg.from_segment_without_obx(obs):
                continue
            self._mark(used, obs)
            status = sg.OBSERVATION_STATUS.get(str(obs.get("status") or ""), "F")
            components = [c for c in obs.get("component") or [] if isinstance(c, Mapping)]
            has_value = any(k.startswith("value") for k in obs)
            if components and not has_value and all(c.get("code") == obs.get("code") for c in components):
                # Components that repeat the Observation's own code are the values of one OBX
                # with a repeating OBX-5 (IG OBX[Observation-Component]): folded back into it.
                set_id += 1
                segs.append(sg.obx_repeated(set_id, obs, components, ctx, status, ce_width=w))
                for n, note in enumerate(obs.get("note") or [], start=1):
                    if isinstance(note, Mapping) and note.get("text"):
                        segs.append(sg.nte(n, str(note["text"])))
                continue
            sub_id = str(sub) if components else ""
            if has_value or not components:
                set_id += 1
                segs.append(sg.obx(set_id, obs, ctx, status, sub_id=sub_id, ce_width=w))
                for n, note in enumerate(obs.get("note") or [], start=1):
                    if isinstance(note, Mapping) and note.get("text"):
                        segs.append(sg.nte(n, str(note["text"])))
            for comp in components:
                set_id += 1
                segs.append(sg.obx(set_id, comp, ctx, status, sub_id=sub_id, ce_width=w, parent=obs))
        return segs

    # ---------------------------------------------------------------------------------- VXU^V04
    def _immunizations(self, ctx: Context, used: set[int]) -> list[str]:
        immunizations = ctx.of_type("Immunization")
        messages = []
        w = self.settings.ce_width
        for patient, group in self._group_by_patient(ctx, immunizations):
            segs: list[Seg | None] = [self._msh("VXU", "V04", "VXU_V04")]
            segs += self._patient_block(ctx, patient, used, with_nk1=True)
            segs += self._visit(ctx, group, used)[:1]
            segs += self._insurance(ctx, patient, used)
            for imm in group:
                self._mark(used, imm)
                placer, filler = sg.order_identifiers(imm)
                order = Seg("ORC")
                order[1] = "RE"
                order[2] = ei(placer) if placer else None
                order[3] = ei(filler) if filler else None
                segs.append(order)
                segs.append(sg.rxa(imm, ctx, w))
                segs.append(sg.rxr(imm, w))
            # Observations about the vaccination (eligibility, VIS dates) follow the last RXA.
            segs += self._obx_block(ctx, [o for o in ctx.of_type("Observation") if id(o) not in used], used)
            messages.append(self._render(segs))
        return messages

    # ---------------------------------------------------------------------------------- SIU^S12
    def _appointments(self, ctx: Context, used: set[int], trigger: str = "S12") -> list[str]:
        messages = []
        w = self.settings.ce_width
        for appt in ctx.of_type("Appointment"):
            self._mark(used, appt)
            patient = _Patient(ctx, _subject_ref(appt, ctx))
            practitioners: list[tuple[Rep, Any]] = []
            locations: list[tuple[str, Any]] = []
            for part in appt.get("participant") or []:
                if not isinstance(part, Mapping):
                    continue
                actor = part.get("actor")
                target = ctx.resolve(actor)
                kind = target.get("resourceType") if target is not None else None
                ref = actor.get("reference") if isinstance(actor, Mapping) else None
                if kind is None and isinstance(ref, str):
                    kind = ref.split("/")[0].split("?")[0]
                role = first(part.get("type"))
                if kind in ("Practitioner", "PractitionerRole"):
                    self._mark(used, target)
                    practitioners.append((sg.practitioner_xcn(ctx, actor), role))
                elif kind == "Location":
                    self._mark(used, target)
                    name = str((target or {}).get("name") or (actor or {}).get("display") or "")
                    locations.append((name, role))
            contact = practitioners[0][0] if practitioners else []
            segs: list[Seg | None] = [self._msh("SIU", trigger, "SIU_S12"), sg.sch(appt, ctx, w, contact)]
            segs.append(sg.appointment_tq1(appt))
            if appt.get("comment"):
                segs.append(sg.nte(1, str(appt["comment"])))
            if patient.reference is not None or patient.resource is not None:
                segs += self._patient_block(ctx, patient, used)
                encounter = ctx.resolve(appt.get("encounter"), "Encounter") or first(ctx.of_type("Encounter"))
                if encounter is not None:
                    self._mark(used, encounter)
                    segs.append(sg.pv1(encounter, ctx))
                segs += self._obx_block(
                    ctx, [o for o in ctx.of_type("Observation") if id(o) not in used], used
                )
            rgs = Seg("RGS")
            rgs[1] = "1"
            segs.append(rgs)
            start = dtm(appt.get("start"))
            services = list(appt.get("serviceType") or [])
            if not services and appt.get("appointmentType"):
                services = [appt["appointmentType"]]
            for i, service in enumerate(services, start=1):
                segs.append(sg.ais(i, service, w, start))
            for i, (name, role) in enumerate(locations, start=1):
                segs.append(sg.ail(i, name, role, w, False))
            for i, (xcn, role) in enumerate(practitioners, start=1):
                segs.append(sg.aip(i, xcn, role, w, False))
            messages.append(self._render(segs))
        return messages

    # ---------------------------------------------------------------------------------- ORM / OML
    def _orders(
        self, ctx: Context, used: set[int], oml: bool | None = None, all_requests: bool = False
    ) -> list[str]:
        requests = [r for r in ctx.of_type("ServiceRequest") if all_requests or id(r) not in used]
        messages = []
        w = self.settings.ce_width
        if oml is None:
            oml = self.settings.order_message == "OML^O21"
        for patient, group in self._group_by_patient(ctx, requests):
            mtype, trigger = ("OML", "O21") if oml else ("ORM", "O01")
            segs: list[Seg | None] = [self._msh(mtype, trigger, f"{mtype}_{trigger}")]
            segs += self._patient_block(ctx, patient, used)
            segs += self._visit(ctx, group, used)
            segs += self._insurance(ctx, patient, used)
            for set_id, request in enumerate(group, start=1):
                self._mark(used, request)
                segs.append(sg.orc(request, ctx))
                if oml:
                    segs.append(sg.tq1(request))
                specimens = [
                    s for s in (ctx.resolve(r, "Specimen") for r in request.get("specimen") or []) if s
                ]
                segs.append(sg.obr(set_id, ctx, request=request, specimen=first(specimens), ce_width=w))
                for n, note in enumerate(request.get("note") or [], start=1):
                    if isinstance(note, Mapping) and note.get("text"):
                        segs.append(sg.nte(n, str(note["text"])))
                if set_id == len(group):
                    # Observations sent with the order (ask-at-order-entry answers) follow its OBR.
                    segs += self._obx_block(
                        ctx, [o for o in ctx.of_type("Observation") if id(o) not in used], used
                    )
                if oml:
                    for i, specimen in enumerate(specimens, start=1):
                        self._mark(used, specimen)
                        segs.append(sg.spm(specimen, i))
            messages.append(self._render(segs))
        return messages

    # ---------------------------------------------------------------------------------- ADT
    def encounter_event(self, encounter: Resource) -> str:
        """ADT trigger for an Encounter: configured, or by status, class and location history.

        finished -> A03 (discharge); in progress with a completed prior location -> A02
        (transfer); in progress otherwise -> A01 (inpatient admit) or A04 (outpatient or emergency
        registration, by ``class``); any other status -> A08 (update).
        """
        configured = self.settings.encounter_event
        if configured != "auto":
            return configured
        status = str(encounter.get("status") or "")
        if status == "finished":
            return "A03"
        if status in ("in-progress", "arrived", "triaged", "onleave"):
            active, prior = sg.active_and_prior_location(encounter)
            if active is not None and prior is not None:
                return "A02"
            # Inpatient stays are admitted (A01); emergency, ambulatory and other visits that get
            # no bed are registered (A04, same ADT_A01 structure). Unknown classes are admissions.
            klass = obj(encounter, "class")
            return "A04" if str(klass.get("code") or "") in _REGISTERED_CLASSES else "A01"
        return "A08"

    def _adt(
        self,
        ctx: Context,
        trigger: str,
        patient: _Patient,
        encounter: Resource | None,
        used: set[int],
        observations: bool = False,
    ) -> str:
        structure = STRUCTURE[trigger]
        occurred = ""
        if encounter is not None:
            period = obj(encounter, "period")
            occurred = dtm(period.get("end") if trigger == "A03" else period.get("start"))
        with_nk1 = structure in _ADT_WITH_NK1_IN1
        segs: list[Seg | None] = [self._msh("ADT", trigger, structure), self._evn(trigger, occurred)]
        segs += self._patient_block(ctx, patient, used, with_nk1=with_nk1)
        self._mark(used, encounter)
        segs += [sg.pv1(encounter, ctx), sg.pv2(encounter)]
        if observations:
            segs += self._obx_block(ctx, ctx.of_type("Observation"), used)
        if with_nk1:
            segs += self._insurance(ctx, patient, used)
        return self._render(segs)

    def _encounters(self, ctx: Context, used: set[int]) -> list[str]:
        messages = []
        for encounter in ctx.of_type("Encounter"):
            if id(encounter) in used:
                continue
            patient = _Patient(ctx, encounter.get("subject"))
            messages.append(self._adt(ctx, self.encounter_event(encounter), patient, encounter, used))
        return messages

    def _patients(self, ctx: Context, used: set[int]) -> list[str]:
        messages = []
        for patient_resource in ctx.of_type("Patient"):
            if id(patient_resource) in used:
                continue
            patient = _Patient(ctx, None)
            patient.resource = patient_resource
            messages.append(self._adt(ctx, self.settings.patient_event, patient, None, used))
        return messages


V2_EVENTS = "http://terminology.hl7.org/CodeSystem/v2-0003"
_EVENT_TYPES = {"R01": "ORU", "V04": "VXU", "S12": "SIU", "O01": "ORM", "O21": "OML"}


def message_event(ctx: Context) -> tuple[str, str] | None:
    """(message type, trigger) named by the input's MessageHeader.eventCoding (HL7 table 0003)."""
    for header in ctx.of_type("MessageHeader"):
        coding = obj(header, "eventCoding")
        if coding.get("system") != V2_EVENTS or not coding.get("code"):
            continue
        trigger = str(coding["code"])
        display = str(coding.get("display") or "")
        if "^" in display:
            return display.split("^")[0], trigger
        if trigger.startswith("A"):
            return "ADT", trigger
        if trigger in _EVENT_TYPES:
            return _EVENT_TYPES[trigger], trigger
    return None


def trigger_of(message: str) -> tuple[str, str]:
    """(MSH-9.1, MSH-9.2) of an ER7 message we built."""
    msh = message.split("\r", 1)[0].split("|")
    parts = msh[8].split("^") if len(msh) > 8 else [""]
    return parts[0], parts[1] if len(parts) > 1 else ""


__all__ = [
    "ENCOUNTER_EVENTS",
    "ORDER_MESSAGES",
    "PATIENT_EVENTS",
    "STRUCTURE",
    "SUPPORTED_VERSIONS",
    "MessageBuilder",
    "Settings",
    "code_of",
    "new_control_id",
    "trigger_of",
]
