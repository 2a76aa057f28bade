"""HL7 v2 message -> FHIR R4 transaction Bundle.

One general mechanism: the segments are walked in order and each is handed to the handler of its
segment id (:data:`HANDLERS`). A handler builds its resource from the declared field maps
(:mod:`.fieldmaps`) and links it to the resources the message structure puts around it (the
patient, the visit, the order group, the report, the appointment) through :class:`State`. The
message family (MSH-9.1) selects only the few variants the IG message maps make (OBX is an
Observation in ORU, document content in MDM; OBR adds a DiagnosticReport in result messages;
ORC shapes an Immunization in VXU and a MedicationRequest in pharmacy messages).
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from pyheart.broker.errors import DATA_SHAPE_ERRORS, TransformError
from pyheart.broker.hl7v2 import Hl7Message, Segment, Value
from pyheart.transformers.hl7v2_fhir import datatypes as dt
from pyheart.transformers.hl7v2_fhir import fieldmaps as fm
from pyheart.transformers.hl7v2_fhir.context import Context, Options, xcn_name
from pyheart.transformers.hl7v2_fhir.ids import message_resource_id, resource_id

Json = dict[str, Any]

#: Message families whose OBR carries results (OBR -> ServiceRequest + DiagnosticReport).
RESULT_FAMILIES = frozenset({"ORU", "OUL", "ORF", "OPU", "ORA"})
#: Families whose ORC/RX* segments describe medication orders.
PHARMACY_FAMILIES = frozenset({"RDE", "RDS", "RGV", "RAS", "OMP", "RRE", "RDO", "ORP", "RRD"})
_PATIENT_NEEDED = frozenset(
    {
        "RelatedPerson",
        "AllergyIntolerance",
        "Condition",
        "Procedure",
        "Coverage",
        "Immunization",
        "MedicationRequest",
        "MedicationDispense",
        "ChargeItem",
        "ServiceRequest",
    }
)
_HAS_NOTE = frozenset(
    {
        "Observation",
        "ServiceRequest",
        "Immunization",
        "MedicationRequest",
        "MedicationDispense",
        "Specimen",
        "Procedure",
        "AllergyIntolerance",
        "Condition",
        "ChargeItem",
        "NutritionOrder",
    }
)
_ENCOUNTER_CLASS_UNKNOWN = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor",
    "code": "UNK",
    "display": "unknown",
}
#: Without SCH-25, the trigger event says the status (S16: discontinued, it will not go on).
_APPOINTMENT_STATUS_BY_EVENT = {
    "S15": "cancelled",
    "S16": "cancelled",
    "S17": "entered-in-error",
    "S26": "noshow",
}


class State:
    """What the walk has seen so far: the resources later segments attach to."""

    def __init__(self, msg: Hl7Message) -> None:
        self.family = msg.message_type
        self.event = msg.trigger_event
        self.patient: Json | None = None
        self.encounter: Json | None = None
        self.encounter_ref: Json | None = None
        self.episode: Json | None = None
        self.orc: Segment | None = None
        self.order: Json | None = None
        self.order_ref: Json | None = None
        self.report: Json | None = None
        self.report_ref: Json | None = None
        self.observation_ref: Json | None = None
        self.appointment: Json | None = None
        #: IG SCH[ServiceRequest]: the SCH's order (SCH-26/27) and the AIS services made of it.
        self.schedule_order: tuple[Segment, Json] | None = None
        self.schedule_services: list[tuple[Segment, Json]] = []
        self.document: Json | None = None
        self.documents: list[tuple[Json, Segment]] = []
        self.immunization: Json | None = None
        self.medication: Json | None = None
        self.medication_ref: Json | None = None
        self.last: Json | None = None
        self.focus: list[Json] = []
        self.order_used = False
        #: TQ1 segments of the current ORC group that came before its OBR/RXO/RXE.
        self.pending_timing: list[Segment] = []
        self._names: list[str] | None = None
        #: The order group resource the OBX results belong to, with its first identifier.
        self.group_ident: tuple[Json | None, Json | None] = (None, None)
        #: Provenances waiting for their target (set once the message is walked).
        self.pending_targets: list[Json] = []
        #: Resources made before the PID they need (RF1, AUT): (resource, patient key, id key).
        self.awaiting_patient: list[tuple[Json, str, tuple[str, ...]]] = []
        #: The Specimen of the current SPM group (its SAC containers follow the SPM's OBX).
        self.specimen: Json | None = None
        #: DG1 Conditions sent before the PV1 whose Encounter lists them: (Condition, diagnosis).
        self.pending_diagnoses: list[tuple[Json, Json]] = []
        #: The current patient's CareTeam (ROL/PRT/IN3 after PID), made by its first member.
        self.care_team: Json | None = None
        #: Whether the current SCH gave the Appointment's status (SCH-25).
        self.sch_status = False
        #: PV1-20 financial class (table 0064), the type of the IN1 Coverage that follows.
        self.financial_class = ""
        #: The Appointment whose AIG/AIL/AIP came last: its NTEs are notes, not the comment.
        self.resource_notes: Json | None = None

    def segment_names(self, ctx: Context) -> list[str]:
        """The message's segment ids in order (by ``Segment.index``), listed once."""
        if self._names is None:
            self._names = [seg.name for seg in ctx.msg]
        return self._names


_XHTML = "http://www.w3.org/1999/xhtml"


def _new(rtype: str) -> Json:
    return {"resourceType": rtype}


def _subject(ctx: Context, res: Json, key: str = "subject") -> None:
    if ctx.patient_ref is not None:
        res[key] = ctx.patient_ref


def _first_ident(res: Json, prefer: tuple[str, ...] = ("FILL", "PLAC")) -> Json | None:
    idents = res.get("identifier") or []
    for code in prefer:
        for ident in idents:
            codes = [c.get("code") for c in ident.get("type", {}).get("coding", [])]
            if code in codes and ident.get("value"):
                return dict(ident)
    for ident in idents:
        if ident.get("value"):
            return dict(ident)
    return None


# ------------------------------------------------------------------------------ handlers


def h_pid(ctx: Context, seg: Segment, st: State) -> None:
    """PID -> Patient (+ Account from PID-18); later segments refer to this patient."""
    res = fm.apply(fm.PID, seg, _new("Patient"), ctx)
    st.care_team = None  # a new patient (A17 swaps carry two): its own care team
    # The id comes from the medical record number when PID-3 has one (stable whatever order the
    # sender lists identifiers in), else from the first PID-3 identifier.
    ident = None
    reps = seg.reps(3)
    for rep in sorted(reps, key=lambda r: r.get(5) != "MR"):
        ident = next((i for i in res.get("identifier", []) if i.get("value") == rep.get(1)), None)
        if ident is not None:
            break
    if ident is None and res.get("identifier"):
        ident = res["identifier"][0]
    # The whole Patient is built before it is added: a Patient already in the bundle (the same
    # identifiers) takes the elements it lacks from it, and later segments complete that one.
    _us_core_race_ethnicity(seg, res)
    if seg.get(12):
        _county(seg, res)
    if seg.get(39):
        for rep in seg.reps(39):
            # IG PID-39: tribal citizenship, as the patient-citizenship extension's code.
            tribe = dt.cwe_codeable_concept(rep, ctx)
            if tribe:
                res.setdefault("extension", []).append(
                    {
                        "url": _SD + "patient-citizenship",
                        "extension": [{"url": "code", "valueCodeableConcept": tribe}],
                    }
                )
    _birth_time(ctx, seg, res)
    _animal_breed(ctx, seg, res)
    if seg.raw(27):
        _veteran_status(ctx, seg, res)
    ctx.patient_ref = ctx.add(res, ident=ident, key=("PID", str(seg.index)))
    ctx.patient = st.patient = st.last = _stored(ctx, ctx.patient_ref, res)
    st.focus.append(ctx.patient_ref)
    st.encounter = st.encounter_ref = st.episode = None
    if seg.raw(34) and seg.raw(33) and ctx.options.provenance:
        _patient_provenance(ctx, seg)
    for rep in seg.reps(21):
        # IG CX[RelatedPerson-Mother]: the mother's identifier makes a RelatedPerson.
        mother_ident = dt.cx_identifier(rep, ctx)
        if mother_ident:
            mother = {
                "resourceType": "RelatedPerson",
                "identifier": [mother_ident],
                "patient": ctx.patient_ref,
                "relationship": [{"coding": [{"system": _ROLE_CODE, "code": "MTH", "display": "mother"}]}],
            }
            ctx.add(mother, ident=mother_ident)
    account = seg.value(18)
    if account.get(1):
        acct_ident = dt.cx_identifier(account, ctx)
        if acct_ident:
            acct = {"resourceType": "Account", "identifier": [acct_ident], "status": "active"}
            acct["subject"] = [ctx.patient_ref]
            ctx.add(acct, ident=acct_ident)


_ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
_PERFORMER = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "performer"}
    ]
}


def _patient_provenance(ctx: Context, seg: Segment) -> None:
    """IG PID[Provenance-Patient]: the last update of the patient's record (PID-33) by a facility
    (PID-34). Recorded is the message time (MSH-7): the same message gives the same Provenance."""
    recorded = dt.instant(ctx.msg.msh.get(7), ctx.default_tz)
    who = ctx.organization_from_hd(seg.value(34))
    if recorded is None or who is None or ctx.patient_ref is None:
        return
    prov: Json = {"resourceType": "Provenance", "target": [ctx.patient_ref], "recorded": recorded}
    occurred = dt.dtm(seg.get(33), ctx.default_tz)
    if occurred:
        prov["occurredDateTime"] = occurred
    prov["activity"] = {
        "coding": [dt.coding("UPDATE", "http://terminology.hl7.org/CodeSystem/v3-DataOperation")]
    }
    prov["agent"] = [{"type": _PERFORMER, "who": who}]
    ctx.add(prov, key=("PID", str(seg.index), "Provenance"))


def _county(seg: Segment, res: Json) -> None:
    """IG PID-12: the county code is the district of the only address without a county
    (XAD.9), else of an address of its own (none when it repeats the address's county)."""
    county = seg.get(12)
    addresses = res.get("address") or []
    # XAD.9 is a CWE: valued when any of its sub-components is (a text without a code counts).
    own = seg.value(11).component(9)
    if len(addresses) == 1 and seg.repetitions(11) == 1 and own.get(1) == county:
        return
    if len(addresses) == 1 and not own and "district" not in addresses[0]:
        addresses[0] = {**addresses[0], "district": county}
    else:
        res.setdefault("address", []).append({"district": county})


def _birth_time(ctx: Context, seg: Segment, res: Json) -> None:
    """PID-7 with a time -> the patient-birthTime extension on birthDate (IG PID[Patient])."""
    raw = seg.get(7)
    if len(raw) > 8:
        when = dt.dtm(raw, ctx.default_tz)
        if when and "T" in when:
            res["_birthDate"] = {"extension": [{"url": _SD + "patient-birthTime", "valueDateTime": when}]}


#: The IG maps PID-27 to a veteranMilitaryStatus extension it leaves undefined (no HL7 one
#: exists): a local extension under the configured ``system_base``, as local systems are named.
_VETERAN_STATUS = "StructureDefinition/patient-veteranMilitaryStatus"


def _veteran_status(ctx: Context, seg: Segment, res: Json) -> None:
    """PID-27 (veterans military status) -> the IG's veteranMilitaryStatus extension."""
    status = dt.cwe_codeable_concept(seg.value(27), ctx)
    if status:
        ext = {"url": ctx.system_base + _VETERAN_STATUS, "valueCodeableConcept": status}
        res.setdefault("extension", []).append(ext)


def _animal_breed(ctx: Context, seg: Segment, res: Json) -> None:
    """PID-36 breed -> patient-animal.breed (PID-35 species is a declared field map)."""
    if not seg.raw(36):
        return
    breed = dt.cwe_codeable_concept(seg.value(36), ctx)
    if breed is None:
        return
    for ext in res.get("extension", []):
        if ext.get("url") == _SD + "patient-animal":
            ext["extension"].append({"url": "breed", "valueCodeableConcept": breed})
            return
    res.setdefault("extension", []).append(
        {"url": _SD + "patient-animal", "extension": [{"url": "breed", "valueCodeableConcept": breed}]}
    )


_SD = "http://hl7.org/fhir/StructureDefinition/"
_CDCREC = "urn:oid:2.16.840.1.113883.6.238"
_NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
#: The OMB race categories and ethnicity codes US Core lists as ``ombCategory``, with their
#: display in the code system (the sender's text for them may be anything).
_OMB_RACE = {
    "1002-5": (_CDCREC, "American Indian or Alaska Native"),
    "2028-9": (_CDCREC, "Asian"),
    "2054-5": (_CDCREC, "Black or African American"),
    "2076-8": (_CDCREC, "Native Hawaiian or Other Pacific Islander"),
    "2106-3": (_CDCREC, "White"),
    "UNK": (_NULL_FLAVOR, "Unknown"),
    "ASKU": (_NULL_FLAVOR, "Asked but no answer"),
}
_OMB_ETHNICITY = {
    "2135-2": (_CDCREC, "Hispanic or Latino"),
    "2186-5": (_CDCREC, "Not Hispanic or Latino"),
    "UNK": (_NULL_FLAVOR, "Unknown"),
    "ASKU": (_NULL_FLAVOR, "Asked but no answer"),
}
#: HL7 table 0189 (ethnic group) codes -> the CDC ethnicity codes.
_ETHNICITY_0189 = {"H": "2135-2", "N": "2186-5", "U": "UNK"}
_US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
#: The shape of CDC Race & Ethnicity codes (e.g. 2106-3).
_CDC_CODE = re.compile(r"^\d{4}-\d$")


def _us_core_race_ethnicity(seg: Segment, res: Json, race: int = 10, ethnicity: int = 22) -> None:
    """Race / ethnic group fields (PID-10 / PID-22, NK1-35 / NK1-28) -> US Core race and
    ethnicity extensions (the IG leaves these fields to the realm's extension; US Core is the US
    one, with CDC race and ethnicity codes)."""
    for field, url, omb in (
        (race, _US_CORE + "us-core-race", _OMB_RACE),
        (ethnicity, _US_CORE + "us-core-ethnicity", _OMB_ETHNICITY),
    ):
        if not seg.raw(field):
            continue
        parts: list[Json] = []
        texts: list[str] = []
        for rep in seg.reps(field):
            code, display = rep.get(1), rep.get(2)
            version = rep.get(7)
            if field == ethnicity and code.upper() in _ETHNICITY_0189:
                code, version = _ETHNICITY_0189[code.upper()], ""  # the version was table 0189's
            if not code:
                continue
            known = omb.get(code)
            if known is not None:
                coding = {"system": known[0], "code": code, "display": known[1]}
                parts.append({"url": "ombCategory", "valueCoding": coding})
            elif _CDC_CODE.match(code):
                coding = {"system": _CDCREC, "code": code}
                if display:
                    coding["display"] = display
                parts.append({"url": "detailed", "valueCoding": coding})
            else:
                # Not a CDC race/ethnicity code (a local one): only its text is known.
                texts.append(display or code)
                continue
            if version:
                coding["version"] = version
            if coding.get("display"):
                texts.append(coding["display"])
        if parts or texts:
            text = ", ".join(texts) or parts[0]["valueCoding"]["code"]
            parts.append({"url": "text", "valueString": text})
            res.setdefault("extension", []).append({"url": url, "extension": parts})


#: PD1-16 immunization registry status (table 0441) -> Patient.active: A (active) is an active
#: record, the inactive statuses (I, L lost to follow-up, M moved, P permanently) are not; O
#: (other) and U (unknown) say neither.
_REGISTRY_ACTIVE = {"A": True, "I": False, "L": False, "M": False, "P": False}


def h_pd1(ctx: Context, seg: Segment, st: State) -> None:
    """PD1 -> more Patient elements."""
    if st.patient is not None:
        fm.apply(fm.PD1, seg, st.patient, ctx)
        if seg.raw(16):
            # The IG PD1 map leaves PD1-16 out; whether the record is in active use is
            # Patient.active (as FHIR-Converter maps it).
            active = _REGISTRY_ACTIVE.get(seg.get(16).upper())
            if active is not None and "active" not in st.patient:
                st.patient["active"] = active
    if seg.raw(7) and ctx.patient_ref is not None:
        # IG PD1[Observation-LivingWill]: PD1-7 as an Observation of the patient.
        value = dt.cwe_codeable_concept(seg.value(7), ctx, "LivingWillCode")
        if value:
            obs: Json = {"resourceType": "Observation", "status": "final"}
            obs["code"] = {"coding": [dt.coding("75320-2", "http://loinc.org")]}
            obs["subject"] = ctx.patient_ref
            obs["valueCodeableConcept"] = value
            ctx.add(obs, key=("PD1", str(seg.index), "LivingWill"))


def h_mrg(ctx: Context, seg: Segment, st: State) -> None:
    """MRG -> the prior Patient, inactive and ``replaced-by`` the surviving one, which ``replaces``
    it (the FHIR patient-merge pattern the IG's A40 map points to)."""
    if st.patient is None or ctx.patient_ref is None:
        return
    prior_account = dt.cx_identifier(seg.value(3), ctx) if seg.get(3) else None
    if prior_account:
        surviving = _patient_account(ctx)
        # IG MRG[Account]: the prior account; its status is not in the message.
        acct: Json = {"resourceType": "Account", "identifier": [prior_account], "status": "unknown"}
        acct["subject"] = [ctx.patient_ref]
        prior_ref = ctx.add(acct, ident=prior_account)
        if surviving is not None and surviving[1] != prior_ref:
            _account_linkage(ctx, seg, surviving, (prior_account, prior_ref))
    idents = [i for i in (dt.cx_identifier(rep, ctx) for rep in seg.reps(1)) if i]
    if not idents:
        return
    old: Json = {"resourceType": "Patient", "identifier": idents, "active": False}
    old["link"] = [{"other": ctx.patient_ref, "type": "replaced-by"}]
    old_ref = ctx.add(old, ident=idents[0])
    if old_ref != ctx.patient_ref:
        st.patient.setdefault("link", []).append({"other": old_ref, "type": "replaces"})
        # The merge itself, as a Linkage: the surviving record is the source, the prior one
        # historical (how FHIR records that two Patient records are the same person).
        survivor = {**ctx.patient_ref, "type": "Patient"}
        prior = {**old_ref, "type": "Patient", "identifier": idents[0]}
        current = (st.patient.get("identifier") or [None])[0]
        if current:
            survivor["identifier"] = current
        linkage = {
            "resourceType": "Linkage",
            "active": True,
            "item": [{"type": "source", "resource": survivor}, {"type": "historical", "resource": prior}],
        }
        ctx.add(linkage, key=("MRG", str(seg.index)))


def _account_linkage(
    ctx: Context, seg: Segment, current: tuple[Json, Json], prior: tuple[Json, Json]
) -> None:
    """An account merge (MRG-3) as a Linkage, as the patient merge is: the surviving Account
    (PID-18) is the source, the prior one historical."""
    survivor: Json = {**current[1], "type": "Account"}
    idents = current[0].get("identifier") or []
    if idents:
        survivor["identifier"] = idents[0]
    historical = {**prior[1], "type": "Account", "identifier": prior[0]}
    linkage = {
        "resourceType": "Linkage",
        "active": True,
        "item": [{"type": "source", "resource": survivor}, {"type": "historical", "resource": historical}],
    }
    ctx.add(linkage, key=("MRG", str(seg.index), "Account"))


def h_nk1(ctx: Context, seg: Segment, st: State) -> None:
    """NK1 -> RelatedPerson of the patient."""
    if ctx.patient_ref is None:
        return
    res = fm.apply(fm.NK1, seg, _new("RelatedPerson"), ctx)
    res["patient"] = ctx.patient_ref
    if seg.raw(35) or seg.raw(28):
        _us_core_race_ethnicity(seg, res, race=35, ethnicity=28)
    name = res.get("name", [{}])[0]
    rid = resource_id(
        "RelatedPerson",
        ctx.patient_ref["reference"],
        seg.get(1),
        name.get("family", ""),
        *name.get("given", ()),
    )
    ctx.add_shared(res, rid)
    if st.patient is not None and ctx.options.patient_contacts:
        contact = fm.apply(fm.NK1_CONTACT, seg, {}, ctx)
        if contact:
            st.patient.setdefault("contact", []).append(contact)
        org = (
            ctx.entries.get(_rid_in(contact["organization"]["reference"]))
            if "organization" in contact
            else None
        )
        if org is not None and (seg.get(30) or seg.get(31) or seg.get(32)):
            # IG NK1-30/31/32: the contact person of the next-of-kin organisation.
            person: Json = {}
            name = dt.xpn_human_name(seg.value(30), ctx) if seg.get(30) else None
            if name:
                person["name"] = name
            telecom = [t for t in (dt.xtn_contact_point(r, ctx) for r in seg.reps(31)) if t]
            if telecom:
                person["telecom"] = telecom
            address = dt.xad_address(seg.value(32), ctx) if seg.get(32) else None
            if address:
                person["address"] = address
            contacts = org.resource.setdefault("contact", [])
            if person and person not in contacts:
                contacts.append(person)


_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
#: ARV-2 action code (table 0206) -> the security-label handling it asks for; D (delete) adds none.
_ARV_ACTION = {
    "A": (_ACT_CODE, "LABEL", "assign security label"),
    "U": (_ACT_CODE, "LABEL", "assign security label"),
    "X": (_ACT_CODE, "PERSISTLABEL", "persist security label"),
}
#: ARV-3 access restriction value (table 0717) -> the HL7 security label with that meaning.
_ARV_VALUE = {
    "ALL": (_CONFIDENTIALITY, "R", "restricted"),
    "SMD": (_CONFIDENTIALITY, "R", "restricted"),
    "NO": (_CONFIDENTIALITY, "U", "unrestricted"),
    "DEM": (_ACT_CODE, "DEMO", "all demographic information sensitivity"),
    "LOC": (_ACT_CODE, "LOCIS", "location information sensitivity"),
    "DRG": (_ACT_CODE, "DRGIS", "drug information sensitivity"),
    "HIV": (_ACT_CODE, "HIV", "HIV/AIDS information sensitivity"),
    "STD": (_ACT_CODE, "STD", "sexually transmitted disease information sensitivity"),
    "PSY": (_ACT_CODE, "PSY", "psychiatry disorder information sensitivity"),
    "PID-7": (_ACT_CODE, "DOB", "date of birth information sensitivity"),
    "PID-17": (_ACT_CODE, "REL", "religion information sensitivity"),
}
#: ARV-4 access restriction reason (table 0719) -> the HL7 security label with that meaning.
_ARV_REASON = {
    "PAT": (_ACT_CODE, "PRS", "patient requested information sensitivity"),
    "PHY": (_ACT_CODE, "PHY", "physician requested information sensitivity"),
    "EMP": (_ACT_CODE, "EMP", "employee information sensitivity"),
    "DIA": (_ACT_CODE, "DIA", "diagnosis information sensitivity"),
    "VIP": (_ACT_CODE, "CEL", "celebrity information sensitivity"),
    "REG": (_ACT_CODE, "CPLYJPP", "comply with jurisdictional privacy policy"),
    "ORG": (_ACT_CODE, "CPLYOSP", "comply with organization security policy"),
}
_ARV_RANGE = "http://hl7.org/fhir/uv/v2mappings/StructureDefinition/access-restriction-range"
#: ARV-5 free-text instructions: a label of the local code system, the text as its display.
_ARV_INSTRUCTIONS = "special-access-restriction-instructions"


def h_arv(ctx: Context, seg: Segment, st: State) -> None:
    """ARV -> security labels (``meta.security``) of the resource the access restriction is about:
    the visit's Encounter when it follows PV1/PV2, else the Patient. The IG has no ARV map; the
    labels are the HL7 security-label codes for the v2 tables' meanings (as FHIR-Converter maps
    them), ARV-6 the IG's access-restriction-range extension on each of them."""
    target = st.encounter if st.encounter is not None else st.patient
    action = seg.get(2)
    if target is None or action == "D":
        return
    labels: list[Json] = []
    if action in _ARV_ACTION:
        labels.append(dt.coding(_ARV_ACTION[action][1], _ARV_ACTION[action][0], _ARV_ACTION[action][2]))
    for field, table, v2_table in ((3, _ARV_VALUE, "0717"), (4, _ARV_REASON, "0719")):
        for rep in seg.reps(field):
            known = table.get(rep.get(1))
            label = dt.coding(known[1], known[0], known[2]) if known else dt.cwe_coding(rep, ctx)
            if label:
                # A code without a coding system is one of the field's v2 table.
                labels.append({"system": dt.V2_CS + v2_table, **label})
    for field, vocab in ((7, "ConfidentialityClassification"), (8, "SecurityLabelHandlingInstructions")):
        for rep in seg.reps(field):
            label = dt.cwe_coding(rep, ctx, vocab)
            if label:
                labels.append(dict(label))
    for rep in seg.reps(5):
        text = rep.text()
        if text:
            system = dt.code_system("additional-security-label", ctx)
            labels.append(dt.coding(_ARV_INSTRUCTIONS, system, text))
    period = dt.dr_period(seg.value(6), ctx) if seg.get(6) else None
    if period:
        labels = [
            {**label, "extension": [{"url": _ARV_RANGE, "valuePeriod": dict(period)}]}
            for label in labels or [{}]
        ]
    if not labels:
        return
    security = target.setdefault("meta", {}).setdefault("security", [])
    for label in labels:
        if label not in security:
            security.append(label)


def h_db1(ctx: Context, seg: Segment, st: State) -> None:
    """DB1 about the patient (DB1-2 "PT" or not valued) -> DB1-3 disabled person identifiers on
    the Patient (the IG has no DB1 map; FHIR-Converter maps them so)."""
    if st.patient is None or seg.get(2) not in ("PT", ""):
        return
    for rep in seg.reps(3):
        ident = dt.cx_identifier(rep, ctx)
        idents = st.patient.setdefault("identifier", []) if ident else None
        if ident and idents is not None and ident not in idents:
            idents.append(ident)
    if seg.raw(4) or seg.raw(5) or seg.raw(6):
        _disability(ctx, seg, st.patient)


#: DB1-4..6 (no IG map, no HL7 extension for a yes/no disability and its period): local
#: extensions under the configured ``system_base``, as for PID-27 veteran status.
_DISABILITY_INDICATOR = "StructureDefinition/patient-disabilityIndicator"
_DISABILITY_PERIOD = "StructureDefinition/patient-disabilityPeriod"


def _disability(ctx: Context, seg: Segment, patient: Json) -> None:
    """DB1-4 disabled indicator (Y/N) and DB1-5/6 its start and end dates -> Patient extensions."""
    exts: list[Json] = []
    flag = seg.get(4).upper()
    if flag in ("Y", "N"):
        exts.append({"url": ctx.system_base + _DISABILITY_INDICATOR, "valueBoolean": flag == "Y"})
    start, end = dt.dtm(seg.get(5), ctx.default_tz), dt.dtm(seg.get(6), ctx.default_tz)
    period = {k: v for k, v in (("start", start), ("end", end)) if v}
    if period:
        exts.append({"url": ctx.system_base + _DISABILITY_PERIOD, "valuePeriod": period})
    have = patient.setdefault("extension", []) if exts else None
    for ext in exts:
        if have is not None and ext not in have:
            have.append(ext)


def h_ctd(ctx: Context, seg: Segment, st: State) -> None:
    """CTD -> a Patient.contact: whom to contact about the patient's order or result, in their
    contact role (the IG has no CTD map; FHIR-Converter maps it so)."""
    if st.patient is None or not ctx.options.patient_contacts:
        return
    contact = fm.apply(fm.CTD_CONTACT, seg, {}, ctx)
    contacts = st.patient.setdefault("contact", [])
    if contact and contact not in contacts:
        contacts.append(contact)
    elif not contacts:
        del st.patient["contact"]


def h_pv1(ctx: Context, seg: Segment, st: State) -> None:
    """PV1 -> Encounter (identified by PV1-19 visit number)."""
    res = fm.apply(fm.PV1, seg, _new("Encounter"), ctx)
    st.financial_class = seg.get(20).strip()
    klass = seg.get(2)
    # IG MSH[Encounter]: the trigger event gives the status (Event[EncounterStatus]); an event
    # that does not tell it (A08 "unknown") leaves it to PV1-45 / PV1-2 (IG PV1[Encounter]).
    event = dt.lookup("Event[EncounterStatus]", st.event) if st.family == "ADT" else None
    if event is not None and event[0] != "unknown":
        res["status"] = event[0]
    elif seg.get(45):
        res["status"] = "finished"
    else:
        mapped = dt.lookup("PatientClass[EncounterStatus]", klass)
        res["status"] = mapped[0] if mapped else "unknown"
    if "class" not in res:
        res["class"] = dict(_ENCOUNTER_CLASS_UNKNOWN)
    locations = res.get("location")
    if klass == "P" and locations and seg.raw(3) not in ("", '""') and locations[0].get("status") == "active":
        # IG PV1-3: the assigned location of a pre-admit (PV1-2 "P") is "planned"; the other
        # PV1 locations keep their own status (PV1-11 temporary location "active").
        locations[0]["status"] = "planned"
    _subject(ctx, res)
    episode = dt.cx_identifier(seg.value(54), ctx) if seg.get(54) else None
    st.episode = None
    if episode is not None and ctx.patient_ref is not None:
        # IG PV1-54: the episode of care the visit belongs to.
        eoc: Json = {"resourceType": "EpisodeOfCare", "identifier": [episode], "status": "active"}
        eoc["patient"] = ctx.patient_ref
        if seg.get(53):
            # IG PV1-53: the service episode's description.
            eoc["extension"] = [{"url": _SD + "resource-instance-description", "valueString": seg.get(53)}]
        eoc_ref = ctx.add(eoc, ident=episode)
        res["episodeOfCare"] = [eoc_ref]
        st.episode = _stored(ctx, eoc_ref, eoc)
    if seg.get(40) and (seg.get(3, 2) or seg.get(3, 3)):
        _bed_status(ctx, seg)
    if seg.get(37):
        # IG PV1-37 (DLD[Location-Discharge]): where the patient was discharged to, a Location
        # of that kind.
        kind = dt.cwe_codeable_concept(seg.value(37).component(1), ctx, "DischargedToLocation")
        if kind:
            # A kind of place (home, nursing facility...), the same resource for every patient.
            place = {"resourceType": "Location", "mode": "kind", "type": [kind]}
            coding = (kind.get("coding") or [{}])[0]
            name = kind.get("text") or coding.get("display")
            if name:
                place["name"] = name  # the kind's human name ("Home", "Nursing facility")
            rid = resource_id(
                "Location", "PV1-37", coding.get("system", ""), coding.get("code", kind.get("text", ""))
            )
            dest = ctx.add_shared(place, rid)
            res.setdefault("hospitalization", {})["destination"] = dest
    ident = next((i for i in res.get("identifier", []) if i.get("value") == seg.get(19)), None)
    if ident is not None and seg.get(19, 5):
        # IG PV1-19 assigns the type VN (visit number) whatever CX.5 says.
        ident["type"] = {"coding": [{"system": dt.V2_CS + "0203", "code": "VN"}], "text": "visit number"}
    ref = ctx.add(res, ident=ident if seg.get(19) else None, key=("PV1", str(seg.index)))
    res = _stored(ctx, ref, res)
    st.encounter, st.encounter_ref = res, ref
    ctx.encounter_ref = ref
    if st.pending_diagnoses:
        _attach_pending_diagnoses(st, res, ref)
    st.focus.append(ref)
    if st.patient is not None:
        fm.apply(fm.PV1_PATIENT, seg, st.patient, ctx)
    st.last = res


def _bed_status(ctx: Context, seg: Segment) -> None:
    """IG PV1-40: the bed status is the operational status of the PV1-3 room or bed Location
    (the most granular level, the one the Encounter refers to)."""
    status = seg.get(40)
    hit = dt.lookup("BedStatus", status)
    coding = dt.coding(hit[0], hit[2], hit[1]) if hit else dt.coding(status, dt.V2_CS + "0116")
    ref = ctx.location_from_pl(seg.value(3))
    entry = ctx.entries.get(_rid_in(ref["reference"])) if ref else None
    if entry is not None:
        entry.resource["operationalStatus"] = coding


def h_pv2(ctx: Context, seg: Segment, st: State) -> None:
    """PV2 -> more Encounter elements."""
    if st.encounter is not None:
        fm.apply(fm.PV2, seg, st.encounter, ctx)
        if seg.get(12) and "text" not in st.encounter:
            # IG PV2-12: the visit description is the Encounter's narrative; "additional", as
            # it says what the structured elements do not.
            div = f'<div xmlns="{_XHTML}">{html.escape(seg.get(12), quote=False)}</div>'
            st.encounter["text"] = {"status": "additional", "div": div}


def _clinical(
    ctx: Context, seg: Segment, st: State, rows: tuple[fm.FieldMap, ...], rtype: str, subject_key: str
) -> Json | None:
    if ctx.patient_ref is None:
        return None
    res = fm.apply(rows, seg, _new(rtype), ctx)
    res[subject_key] = ctx.patient_ref
    return res


def h_al1(ctx: Context, seg: Segment, st: State) -> None:
    """AL1/IAM -> AllergyIntolerance (one per patient and allergen)."""
    rows = fm.AL1 if seg.name == "AL1" else fm.IAM
    res = _clinical(ctx, seg, st, rows, "AllergyIntolerance", "patient")
    if res is None or ctx.patient_ref is None:
        return
    res.setdefault(
        "clinicalStatus",
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "code": "active",
                    "display": "Active",
                }
            ]
        },
    )
    if seg.name == "IAM":
        _iam_extras(ctx, seg, res)
        if seg.raw(17):
            _iam_clinical_status(seg, res)
    code = seg.get(3) or seg.get(3, 2)
    ident = (res.get("identifier") or [None])[0]
    if ident:
        ref = ctx.add(res, ident=ident)
    else:
        ref = ctx.add_shared(
            res, resource_id("AllergyIntolerance", ctx.patient_ref["reference"], code, seg.get(1))
        )
    st.last = _stored(ctx, ref, res)
    st.focus.append(ref)


_ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
_ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
#: v2 table 0438 (allergy clinical status) -> (clinicalStatus code, verificationStatus code):
#: the v2 table mixes both FHIR axes (C "confirmed or verified", I "confirmed but inactive").
_ALLERGY_STATUS_0438: dict[str, tuple[str, str]] = {
    "C": ("active", "confirmed"),
    "I": ("inactive", "confirmed"),
    "D": ("active", "unconfirmed"),
    "P": ("active", "unconfirmed"),
    "S": ("active", "unconfirmed"),
    "U": ("active", "unconfirmed"),
    "E": ("", "entered-in-error"),
}
_ALLERGY_DISPLAY = {
    "active": "Active",
    "inactive": "Inactive",
    "confirmed": "Confirmed",
    "unconfirmed": "Unconfirmed",
    "entered-in-error": "Entered in Error",
}


def _iam_clinical_status(seg: Segment, res: Json) -> None:
    """IG IAM-17 -> clinicalStatus (CWE[CodeableConcept], no IG concept map). FHIR binds
    clinicalStatus and verificationStatus to required code systems, so a table 0438 code also
    gets its FHIR codings on both axes (the v2 coding stays beside the clinical one); codes of
    other systems are left as the IG row maps them."""
    system = seg.get(17, 3).upper()
    pair = _ALLERGY_STATUS_0438.get(seg.get(17).upper()) if system in ("", "HL70438") else None
    if pair is None:
        return
    clinical, verification = pair
    res["verificationStatus"] = {
        "coding": [dt.coding(verification, _ALLERGY_VERIFICATION, _ALLERGY_DISPLAY[verification])]
    }
    if not clinical:
        # FHIR ait-2: no clinicalStatus on an allergy entered in error.
        res.pop("clinicalStatus", None)
        return
    original = {**((res.get("clinicalStatus") or {}).get("coding") or [{}])[0]}
    codings = [dt.coding(clinical, _ALLERGY_CLINICAL, _ALLERGY_DISPLAY[clinical])]
    if "code" in original:
        original.setdefault("system", dt.V2_CS + "0438")
        codings.append(original)
    res["clinicalStatus"] = {"coding": codings}


def _iam_extras(ctx: Context, seg: Segment, res: Json) -> None:
    """IG IAM-27 (clinician identified code) as one more coding of the allergen; IAM-14/15
    (reported by, relationship) as the recorder: the patient ('SEL'), a RelatedPerson, or else a
    Practitioner."""
    if seg.get(27) and "code" in res:
        extra = dt.cwe_codeable_concept(seg.value(27), ctx)
        if extra and extra.get("coding"):
            code = res["code"]
            res["code"] = {**code, "coding": [*code.get("coding", []), *extra["coding"]]}
    if not seg.raw(14) or ctx.patient_ref is None:
        return
    relation = seg.get(15)
    if relation.upper() == "SEL":
        res["recorder"] = ctx.patient_ref
        return
    name = dt.xpn_human_name(seg.value(14), ctx)
    if name is None:
        return
    if relation:
        who: Json = {"resourceType": "RelatedPerson", "patient": ctx.patient_ref, "name": [name]}
        rel = dt.cwe_codeable_concept(seg.value(15), ctx, "Relationship")
        if rel:
            who["relationship"] = [rel]
        rid = resource_id(
            "RelatedPerson",
            ctx.patient_ref["reference"],
            "IAM-14",
            name.get("family", ""),
            *name.get("given", ()),
        )
        res["recorder"] = ctx.add_shared(who, rid)
    else:
        # A name alone identifies no one across messages: an id within this message.
        person = {"resourceType": "Practitioner", "name": [name]}
        res["recorder"] = ctx.add(person, key=("IAM", str(seg.index), "14"))


def h_dg1(ctx: Context, seg: Segment, st: State) -> None:
    """DG1 -> Condition (encounter diagnosis) and Encounter.diagnosis."""
    res = _clinical(ctx, seg, st, fm.DG1, "Condition", "subject")
    if res is None or ctx.patient_ref is None:
        return
    res["category"] = [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                    "code": "encounter-diagnosis",
                    "display": "Encounter Diagnosis",
                }
            ]
        }
    ]
    if seg.get(4) and "code" in res:
        res["code"] = {"text": seg.get(4), **res["code"]}  # a copy: datatype results may be shared
    elif seg.get(4):
        res["code"] = {"text": seg.get(4)}
    if st.encounter_ref is not None:
        res["encounter"] = st.encounter_ref
    asserted = dt.dtm(seg.get(19), ctx.default_tz) if seg.get(19) else None
    if asserted:
        # IG DG1-19: also the condition-assertedDate extension (recordedDate is a field row).
        res.setdefault("extension", []).append(
            {"url": _SD + "condition-assertedDate", "valueDateTime": asserted}
        )
    if seg.get(21) == "D":
        # IG DG1-21: a diagnosis action "delete" marks the Condition entered-in-error.
        res["verificationStatus"] = {
            "coding": [
                dt.coding("entered-in-error", "http://terminology.hl7.org/CodeSystem/condition-ver-status")
            ]
        }
    if seg.get(22):
        # IG DG1-22: the parent diagnosis, by its identifier (EI[Condition]).
        parent = dt.ei_identifier(seg.value(22), ctx)
        if parent is not None:
            cause = {"resourceType": "Condition", "identifier": [parent], "subject": ctx.patient_ref}
            res.setdefault("extension", []).append(
                {"url": _SD + "condition-dueTo", "valueReference": ctx.add(cause, ident=parent)}
            )
    ident = (res.get("identifier") or [None])[0]
    key = seg.get(3) or seg.get(4)
    if ident:
        ref = ctx.add(res, ident=ident)
    else:
        ref = ctx.add_shared(res, resource_id("Condition", ctx.patient_ref["reference"], key, seg.get(1)))
    res = _stored(ctx, ref, res)
    if st.encounter is None and "PV1" in st.segment_names(ctx)[seg.index :]:
        # REF/RQA and a few others send DG1 before PV1: the visit's diagnosis once PV1 comes.
        st.pending_diagnoses.append((res, _diagnosis_entry(ctx, seg, ref)))
    if st.encounter is not None:
        diag = _diagnosis_entry(ctx, seg, ref)
        use = diag.get("use")
        if st.episode is not None:
            # IG DG1[EpisodeOfCare]: the same diagnosis on the visit's episode of care.
            episode_diag: Json = {"condition": ref}
            if use:
                episode_diag["role"] = use
            if "rank" in diag:
                episode_diag["rank"] = diag["rank"]
            _add_diagnosis(st.episode, episode_diag)
        _add_diagnosis(st.encounter, diag)
    st.last = res


def _add_diagnosis(owner: Json, diag: Json) -> None:
    """``diag`` in ``owner``'s diagnosis list, unless it lists that Condition already (a DG1
    repeated with the same identifiers is the same Condition)."""
    found = owner.setdefault("diagnosis", [])
    if all(d.get("condition") != diag["condition"] for d in found):
        found.append(diag)


def _diagnosis_entry(ctx: Context, seg: Segment, ref: Json) -> Json:
    """IG DG1[Encounter]: the Encounter.diagnosis entry (condition, DG1-6 use, DG1-15 rank)."""
    diag: Json = {"condition": ref}
    rank = dt.integer(seg.get(15), 1)
    if rank is not None:
        diag["rank"] = rank
    use = dt.cwe_codeable_concept(seg.value(6), ctx, "DiagnosisType") if seg.get(6) else None
    if use:
        diag["use"] = _diagnosis_type_system(use)
    return diag


#: v2 table 0052 (diagnosis type), for the codes the IG DiagnosisType map leaves unmapped.
_DIAGNOSIS_TYPE_0052 = {"A": "Admitting", "W": "Working", "F": "Final"}


def _diagnosis_type_system(use: Json) -> Json:
    """A DG1-6 table 0052 code sent without a coding system (and not translated by the IG map)
    keeps its v2 table as the system, rather than a coding no receiver can interpret."""
    codings = use.get("coding") or []
    if not any("system" not in c and c.get("code") in _DIAGNOSIS_TYPE_0052 for c in codings):
        return use
    fixed = []
    for c in codings:
        if "system" not in c and c.get("code") in _DIAGNOSIS_TYPE_0052:
            c = {"system": dt.V2_CS + "0052", **c}
            c.setdefault("display", _DIAGNOSIS_TYPE_0052[c["code"]])
        fixed.append(c)
    return {**use, "coding": fixed}


def _attach_pending_diagnoses(st: State, encounter: Json, ref: Json) -> None:
    """The diagnoses of DG1s sent before this PV1 (same patient) join its Encounter."""
    for condition, diag in st.pending_diagnoses:
        if condition.get("subject") == encounter.get("subject"):
            condition["encounter"] = ref
            _add_diagnosis(encounter, diag)
    st.pending_diagnoses = []


def h_pr1(ctx: Context, seg: Segment, st: State) -> None:
    """PR1 -> Procedure."""
    res = _clinical(ctx, seg, st, fm.PR1, "Procedure", "subject")
    if res is None or ctx.patient_ref is None:
        return
    res["status"] = "unknown"  # IG: the status depends on the message context; "unknown" if unclear
    if seg.get(25):
        # IG PR1-25: the parent procedure, by its identifier.
        parent = dt.ei_identifier(seg.value(25), ctx)
        if parent is not None:
            whole: Json = {"resourceType": "Procedure", "identifier": [parent], "status": "unknown"}
            whole["subject"] = ctx.patient_ref
            res["partOf"] = [ctx.add(whole, ident=parent)]
    if "code" not in res and seg.get(4):
        res["code"] = {"text": seg.get(4)}
    elif seg.get(4):
        res["code"] = {"text": seg.get(4), **res["code"]}  # a copy: datatype results may be shared
    mods = [m for m in (dt.fhir_code(r.get(1)) for r in seg.reps(16)) if m] if seg.get(16) else []
    if mods and res.get("code", {}).get("coding") and "code" in res["code"]["coding"][0]:
        # IG PR1-16: the modifiers join the procedure code, "code:modifier[:modifier...]".
        first = {**res["code"]["coding"][0]}
        first["code"] = ":".join([first["code"], *mods])
        res["code"] = {**res["code"], "coding": [first, *res["code"]["coding"][1:]]}
    if seg.get(7) and "performedDateTime" in res:
        _procedure_period(res, seg.get(7))
    if st.encounter_ref is not None:
        res["encounter"] = st.encounter_ref
    ident = (res.get("identifier") or [None])[0]
    if ident:
        ref = ctx.add(res, ident=ident)
    else:
        ref = ctx.add_shared(
            res, resource_id("Procedure", ctx.patient_ref["reference"], seg.get(3), seg.get(5), seg.get(1))
        )
    st.last = _stored(ctx, ref, res)


_YES_NO = dt.V2_CS + "0136"


def _yes_no(code: str) -> Json | None:
    """A Y/N indicator (HL7 table 0136) as a CodeableConcept."""
    code = code.upper()
    if code not in ("Y", "N"):
        return None
    return {"coding": [dt.coding(code, _YES_NO, "Yes" if code == "Y" else "No")]}


def _local_code(ctx: Context, name: str, code: str, display: str) -> Json:
    """A code of one of our local code systems (named under ``code_system_base``)."""
    return {"coding": [dt.coding(code, ctx.code_system_base + name, display)]}


#: ACC yes/no fields -> Observation.component (code, display).
_ACC_INDICATORS = (
    (5, "AJRI", "Accident Job Related Indicator"),
    (6, "ADI", "Accident Death Indicator"),
    (10, "PNI", "Police Notified Indicator"),
)


def h_acc(ctx: Context, seg: Segment, st: State) -> None:
    """ACC (no IG table) -> an injury-incident Observation of the patient: ACC-1 when, ACC-8
    what happened, ACC-5/6/10 indicators as components, ACC-7 who entered it, ACC-3/11 where,
    ACC-13 its identifier."""
    if ctx.patient_ref is None:
        return
    res: Json = {"resourceType": "Observation", "status": "final"}
    res["code"] = _local_code(
        ctx, "observation-code", "injury-incident", "Injury Incident Description Narrative"
    )
    res["subject"] = ctx.patient_ref
    if st.encounter_ref is not None:
        res["encounter"] = st.encounter_ref
    when = dt.dtm(seg.get(1), ctx.default_tz) if seg.get(1) else None
    if when:
        res["effectiveDateTime"] = when
    if seg.get(8):
        res["valueString"] = seg.get(8)
    components: list[Json] = []
    if seg.get(2):
        kind = dt.cwe_codeable_concept(seg.value(2), ctx)
        if kind:
            # ACC-2: the kind of accident (HL7 table 0050).
            kind_code = _local_code(ctx, "accident-indicator", "ACD", "Accident Code")
            components.append({"code": kind_code, "valueCodeableConcept": kind})
    for field, code, display in _ACC_INDICATORS:
        value = _yes_no(seg.get(field))
        if value is not None:
            code_cc = _local_code(ctx, "accident-indicator", code, display)
            components.append({"code": code_cc, "valueCodeableConcept": value})
    if components:
        res["component"] = components
    if seg.raw(7):
        who = ctx.practitioner_from_xcn(seg.value(7))
        if who is not None:
            res["performer"] = [who]
    if seg.get(3) or seg.raw(11):
        place: Json = {"resourceType": "Location"}
        if seg.get(3):
            place["name"] = seg.get(3)
        address = dt.xad_address(seg.value(11), ctx) if seg.raw(11) else None
        if address:
            place["address"] = address
        if len(place) > 1:
            # One accident (patient and time) has one place, whichever message reports it.
            rid = resource_id("Location", ctx.patient_ref["reference"], "ACC", seg.get(1), seg.get(3))
            where = ctx.add_shared(place, rid)
            res["extension"] = [{"url": _SD + "event-location", "valueReference": where}]
    ident = dt.ei_identifier(seg.value(13), ctx) if seg.get(13) else None
    if ident:
        res["identifier"] = [ident]
        ref = ctx.add(res, ident=ident)
    else:
        ref = ctx.add_shared(res, resource_id("Observation", ctx.patient_ref["reference"], "ACC", seg.get(1)))
    st.focus.append(ref)


#: PDA yes/no fields -> an Observation each (code, display).
_PDA_INDICATORS = (
    (3, "death-certificate", "Death Certificate"),
    (6, "autopsy", "Autopsy"),
    (9, "coroner", "Coroner"),
)


def h_pda(ctx: Context, seg: Segment, st: State) -> None:
    """PDA (no IG table) -> the patient's death and autopsy: PDA-2 death location as a completed
    location of the visit; PDA-1 causes as Conditions; PDA-3/6/9
    (death certified, autopsy, coroner indicators) as Observations; PDA-4/5 (certificate signed,
    by whom) and PDA-7/8 (autopsy period, by whom) as completed Procedures."""
    if ctx.patient_ref is None:
        return
    if seg.raw(2) and st.encounter is not None:
        # PDA-2 death location: a place of the visit, left (FHIR-Converter maps it so).
        where = ctx.location_from_pl(seg.value(2))
        stays = st.encounter.get("location") or []
        if where is not None and all(s.get("location") != where for s in stays):
            st.encounter["location"] = [*stays, {"status": "completed", "location": where}]
    for rep in seg.reps(1):
        # PDA-1 death cause: a Condition of the patient.
        cause = dt.cwe_codeable_concept(rep, ctx)
        if cause:
            cond: Json = {"resourceType": "Condition", "code": cause, "subject": ctx.patient_ref}
            rid = resource_id("Condition", ctx.patient_ref["reference"], "PDA-1", rep.get(3), rep.get(1))
            ctx.add_shared(cond, rid)
    for field, code, display in _PDA_INDICATORS:
        value = _yes_no(seg.get(field))
        if value is None:
            continue
        obs: Json = {"resourceType": "Observation", "status": "final"}
        obs["code"] = _local_code(ctx, "observation-code", code, display)
        obs["subject"] = ctx.patient_ref
        obs["valueCodeableConcept"] = value
        # One death record per patient: a later message updates the same resources.
        ctx.add_shared(obs, resource_id("Observation", ctx.patient_ref["reference"], "PDA", code))
    for when_field, who_field, code, display, role in (
        (4, 5, "death-certification", "Death Certification", "Death Certified By"),
        (7, 8, "autopsy-performed", "Autopsy Performed", "Autopsy Performed By"),
    ):
        if not (seg.raw(when_field) or seg.raw(who_field)):
            continue
        proc: Json = {"resourceType": "Procedure", "status": "completed"}
        proc["code"] = _local_code(ctx, "procedure-code", code, display)
        proc["subject"] = ctx.patient_ref
        if when_field == 7:
            period = dt.dr_period(seg.value(7), ctx)
            if period:
                proc["performedPeriod"] = period
        else:
            when = dt.dtm(seg.get(4), ctx.default_tz) if seg.get(4) else None
            if when:
                proc["performedDateTime"] = when
        who = ctx.practitioner_from_xcn(seg.value(who_field)) if seg.raw(who_field) else None
        if who is not None:
            proc["performer"] = [{"function": {"text": role}, "actor": who}]
        ctx.add_shared(proc, resource_id("Procedure", ctx.patient_ref["reference"], "PDA", code))


def _procedure_period(res: Json, minutes_text: str) -> None:
    """IG PR1-7: with a start to the minute (PR1-5), the procedure minutes give performedPeriod."""
    start = res["performedDateTime"]
    minutes = dt.number(minutes_text)
    if "T" not in start or minutes is None or minutes < 0:
        return
    try:
        begin = datetime.fromisoformat(start)
    except ValueError:
        return
    if begin.tzinfo is None:
        return  # FHIR needs a zone once a time is given; dtm always supplies one
    try:
        end = (begin + timedelta(minutes=float(minutes))).isoformat()
    except OverflowError:
        return  # minutes beyond the calendar: no period rather than a failed message
    res["performedPeriod"] = {"start": res.pop("performedDateTime"), "end": end}


#: GT1-11 / IN1-17 relationships that say the person is the patient: table 0063 SEL, and 18
#: (self in the X12 / NUBC codes senders use there; their 01 is the spouse, not self).
_SELF = frozenset({"SEL", "18"})


def h_gt1(ctx: Context, seg: Segment, st: State) -> None:
    """GT1 -> RelatedPerson (the guarantor); the guarantor's details complete the Patient instead
    when GT1-11 says the guarantor is the patient, and an Organization is the guarantor when
    GT1-21 names one."""
    if seg.raw(21) and ctx.patient_ref is not None:
        org = ctx.organization_from_xon(seg.value(21))
        if org is not None:
            _guarantor_organization(ctx, seg, org)
            _account_guarantor(ctx, seg, org)
            return
    if seg.get(11).upper() in _SELF and st.patient is not None and ctx.patient_ref is not None:
        _guarantor_is_patient(ctx, seg, st.patient)
        _account_guarantor(ctx, seg, ctx.patient_ref)
        return
    res = _clinical(ctx, seg, st, fm.GT1, "RelatedPerson", "patient")
    if res is None or ctx.patient_ref is None:
        return
    res.setdefault("relationship", []).append(
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                    "code": "GUAR",
                    "display": "guarantor",
                }
            ]
        }
    )
    name = (res.get("name") or [{}])[0]
    ref = ctx.add_shared(
        res,
        resource_id("RelatedPerson", ctx.patient_ref["reference"], "GT1", seg.get(1), name.get("family", "")),
    )
    _account_guarantor(ctx, seg, ref)


def _guarantor_is_patient(ctx: Context, seg: Segment, patient: Json) -> None:
    """GT1 (no IG table) of a guarantor who is the patient: the guarantor's identifiers, name,
    address and phones (:data:`fm.GT1_PATIENT`) are the patient's; the spouse (GT1-4), employer
    (GT1-16..18, employed GT1-31..32) and contact person (GT1-45/46) become Patient.contact
    entries, the first two in their contact role (table 0131 N next-of-kin, E employer)."""
    fm.apply(fm.GT1_PATIENT, seg, patient, ctx)
    if not ctx.options.patient_contacts:
        return
    for rows, role in ((fm.GT1_SPOUSE, "N"), (fm.GT1_EMPLOYER, "E"), (fm.GT1_CONTACT_PERSON, "")):
        contact = fm.apply(rows, seg, {}, ctx)
        if not (
            "name" in contact or "telecom" in contact or "address" in contact or "organization" in contact
        ):
            continue  # a contact needs details or an organisation (FHIR pat-1), not only a period
        known = dt.lookup("ContactRole", role) if role else None
        if known is not None:
            contact["relationship"] = [{"coding": [dt.coding(known[0], known[2], known[1])]}]
        contacts = patient.setdefault("contact", [])
        if contact not in contacts:
            contacts.append(contact)


def _guarantor_organization(ctx: Context, seg: Segment, org: Json) -> None:
    """GT1 (no IG table) of a guarantor organisation (GT1-21): its contact person (GT1-45 name,
    GT1-46 phones, GT1-47 contact reason) is a contact of that Organization, further GT1-45
    names contacts of their own."""
    found = ctx.entries.get(_rid_in(org["reference"]))
    if found is None or not (seg.raw(45) or seg.raw(46)):
        return
    names = [n for n in (dt.xpn_human_name(rep, ctx) for rep in seg.reps(45)) if n]
    person: Json = {"name": names[0]} if names else {}
    phones = [t for t in (dt.xtn_contact_point(rep, ctx) for rep in seg.reps(46)) if t]
    if phones:
        person["telecom"] = phones
    reason = dt.cwe_codeable_concept(seg.value(47), ctx) if seg.raw(47) and person else None
    if reason:
        person["purpose"] = reason
    contacts = found.resource.setdefault("contact", [])
    for contact in [person, *({"name": name} for name in names[1:])]:
        if contact and contact not in contacts:
            contacts.append(contact)
    if not contacts:
        del found.resource["contact"]


def _account_guarantor(ctx: Context, seg: Segment, party: Json) -> None:
    """GT1 (no IG table) as the guarantor of the patient's Account (from PID-18): the party is
    the patient, the guarantor's RelatedPerson or Organization (see :func:`h_gt1`); GT1-13/14
    (guarantor begin/end dates) are the period, GT1-22 (billing hold flag) ``onHold``."""
    found = _patient_account(ctx)
    if found is None:
        return
    account = found[0]
    guarantor: Json = {"party": party}
    hold = seg.get(22).upper()
    if hold in ("Y", "N"):
        # GT1-22 guarantor billing hold flag: whether the account's billing is on hold for them.
        guarantor["onHold"] = hold == "Y"
    period: Json = {}
    start, end = dt.dtm(seg.get(13), ctx.default_tz), dt.dtm(seg.get(14), ctx.default_tz)
    if start:
        period["start"] = start
    if end:
        period["end"] = end
    if period:
        guarantor["period"] = period
    account.setdefault("guarantor", []).append(guarantor)


def h_blg(ctx: Context, seg: Segment, st: State) -> None:
    """BLG (no IG map) -> the Account of BLG-3, the account the order is billed to (as
    FHIR-Converter maps it), active and of the patient as the PID-18 one (IG PID[Account])."""
    if not seg.get(3):
        return
    ident = dt.cx_identifier(seg.value(3), ctx)
    if not ident:
        return
    acct: Json = {"resourceType": "Account", "identifier": [ident], "status": "active"}
    if ctx.patient_ref is not None:
        acct["subject"] = [ctx.patient_ref]
    ctx.add(acct, ident=ident)


def h_in1(ctx: Context, seg: Segment, st: State) -> None:
    """IN1 -> Coverage."""
    res = _clinical(ctx, seg, st, fm.IN1, "Coverage", "beneficiary")
    if res is None or ctx.patient_ref is None:
        return
    res["status"] = "active"
    if st.financial_class and "type" not in res:
        # IG PV1[Coverage]: PV1-20 financial class is the Coverage's type (IN1-15 plan type
        # first). Without an IN1 there is no Coverage to type: the PV1 names no payor.
        res["type"] = {"coding": [dt.coding(st.financial_class, dt.V2_CS + "0064")]}
    if "payor" not in res:
        res["payor"] = [ctx.patient_ref]
    else:
        payor = ctx.entries.get(res["payor"][0]["reference"].rsplit(":", 1)[-1].rsplit("/", 1)[-1])
        if payor is not None:
            _payor_details(ctx, seg, payor.resource)
    holder = ctx.entries.get(_rid_in(res["policyHolder"]["reference"])) if "policyHolder" in res else None
    if holder is not None:
        # IG IN1-10: the policy holder Organization's identifiers; IN1-44 (insured's employer's
        # address, no IG row) its address.
        for rep in seg.reps(10) if seg.get(10) else ():
            ident = dt.cx_identifier(rep, ctx)
            if ident and ident not in holder.resource.setdefault("identifier", []):
                holder.resource["identifier"].append(ident)
        if not holder.resource.get("identifier"):
            holder.resource.pop("identifier", None)
        address = dt.xad_address(seg.value(44), ctx) if seg.get(44) else None
        if address is not None:
            holder.resource.setdefault("address", [address])
    # IG IN1-49 (insured's id) is the subscriber id; IN1-36 (policy number) when it is empty.
    if seg.get(49) or seg.get(36):
        res["subscriberId"] = seg.get(49) or seg.get(36)
    relation = seg.get(17).upper()
    if "relationship" in res:
        _subscriber_relationship(relation, res)
    if relation in _SELF:  # the insured is the patient
        res["subscriber"] = ctx.patient_ref
    elif seg.get(16):
        insured = fm.apply(fm.IN1_INSURED, seg, _new("RelatedPerson"), ctx)
        insured["patient"] = ctx.patient_ref
        name = (insured.get("name") or [{}])[0]
        rid = resource_id(
            "RelatedPerson", ctx.patient_ref["reference"], "IN1", name.get("family", ""), seg.get(18)
        )
        res["subscriber"] = ctx.add_shared(insured, rid)
    _coverage_details(ctx, seg, res)
    policy = seg.get(36)
    ident = next((i for i in res.get("identifier", []) if policy and i.get("value") == policy), None)
    if ident:
        ref = ctx.add(res, ident=ident)
    else:
        ref = ctx.add_shared(
            res, resource_id("Coverage", ctx.patient_ref["reference"], seg.get(2), seg.get(1))
        )
    # The entry's resource, which IN2 completes (a Coverage already in the bundle absorbs ``res``).
    st.last = _stored(ctx, ref, res)
    account = _patient_account(ctx)
    if account is not None:
        # The insurance pays the patient's account (PID-18): Account.coverage (no IG row).
        paid_by = account[0].setdefault("coverage", [])
        if all(c.get("coverage") != ref for c in paid_by):
            paid_by.append({"coverage": ref})


_SUBSCRIBER_RELATIONSHIP_CS = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
#: Table 0063 relationship of the insured (IN1-17) -> the code of Coverage.relationship's own
#: value set (subscriber-relationship); NON / UNK say no relationship.
_SUBSCRIBER_RELATIONSHIP = {
    "SEL": ("self", "Self"),
    "SPO": ("spouse", "Spouse"),
    "DOM": ("common", "Common Law Spouse"),
    **dict.fromkeys(("CHD", "NCH", "SCH", "FCH"), ("child", "Child")),
    **dict.fromkeys(("PAR", "MTH", "FTH"), ("parent", "Parent")),
    **dict.fromkeys(
        (
            *("BRO", "SIS", "SIB", "GCH", "GRP", "EXF", "FND", "OAD", "EME", "EMR", "ASC"),
            *("CGV", "GRD", "WRD", "DEP", "MGR", "OWN", "TRA", "EMC", "OTH"),
        ),
        ("other", "Other"),
    ),
}


def _subscriber_relationship(relation: str, res: Json) -> None:
    """IN1-17 also as a code of subscriber-relationship, the value set Coverage.relationship is
    bound to, beside the IG concept map's RoleCode (a translation in the same CodeableConcept)."""
    known = _SUBSCRIBER_RELATIONSHIP.get(relation)
    if known is None:
        return
    cc = res["relationship"]
    extra = dt.coding(known[0], _SUBSCRIBER_RELATIONSHIP_CS, known[1])
    codings = cc.get("coding", [])
    if extra not in codings:
        # A new dict: the mapped CodeableConcept may be shared (kept across messages).
        res["relationship"] = {**cc, "coding": [*codings, extra]}


def _payor_details(ctx: Context, seg: Segment, payor: Json) -> None:
    """IG IN1-5: the payor's address; IN1-3 (insurance company id), IN1-6 (contact person) and
    IN1-7 (phone), which the IG leaves unmapped, its identifiers, contact and telecom."""
    if seg.get(5):
        address = dt.xad_address(seg.value(5), ctx)
        if address is not None:
            payor.setdefault("address", [address])
    if seg.get(3) and "identifier" not in payor:
        idents = [i for i in (dt.cx_identifier(rep, ctx) for rep in seg.reps(3)) if i]
        if idents:
            payor["identifier"] = idents
    if seg.get(7) and "telecom" not in payor:
        telecom = [t for t in (dt.xtn_contact_point(rep, ctx) for rep in seg.reps(7)) if t]
        if telecom:
            payor["telecom"] = telecom
    if seg.raw(6) and "contact" not in payor:
        names = [n for n in (dt.xpn_human_name(rep, ctx) for rep in seg.reps(6)) if n]
        if names:
            payor["contact"] = [{"name": name} for name in names]


_COVERAGE_CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"
_COPAY_TYPE = "http://terminology.hl7.org/CodeSystem/coverage-copay-type"


def _coverage_class(code: str, display: str, value: str, name: str) -> Json:
    out: Json = {"type": {"coding": [dt.coding(code, _COVERAGE_CLASS, display)]}, "value": value}
    if name:
        out["name"] = name
    return out


def _coverage_details(ctx: Context, seg: Segment, res: Json) -> None:
    """IN1 fields the IG leaves unmapped that have a Coverage element of their own: the plan
    (IN1-2) and group (IN1-8 number, IN1-9 name) as ``class``, the policy deductible (IN1-37) as
    ``costToBeneficiary``, and the insurance action code D (IN1-55, delete) as the status."""
    classes: list[Json] = []
    if seg.get(2):
        classes.append(_coverage_class("plan", "Plan", seg.get(2), seg.get(2, 2)))
    if seg.get(8):
        classes.append(_coverage_class("group", "Group", seg.get(8), seg.get(9)))
    if classes:
        res["class"] = classes
    if seg.get(37):
        amount = dt.number(seg.get(37, 1, 1))
        if amount is not None:
            money: Json = {"value": amount}
            if seg.get(37, 1, 2):
                money["currency"] = seg.get(37, 1, 2)
            kind = {"coding": [dt.coding("deductible", _COPAY_TYPE, "Deductible")]}
            res["costToBeneficiary"] = [{"type": kind, "valueMoney": money}]
    if seg.get(55).upper() == "D":
        res["status"] = "entered-in-error"


def h_in2(ctx: Context, seg: Segment, st: State) -> None:
    """IN2 (no IG table) completes its IN1's Coverage and insured person: the Medicare (IN2-6),
    Medicaid (IN2-8) and patient member (IN2-61) numbers identify the coverage; the insured's
    employee id (IN2-1), SSN (IN2-2), language (IN2-34) and home phone (IN2-63) go to the
    insured RelatedPerson (Coverage.subscriber) when the insured is not the patient. The
    patient's own numbers and Medicare card name (:data:`fm.IN2_PATIENT`) go to the Patient."""
    if st.patient is not None:
        fm.apply(fm.IN2_PATIENT, seg, st.patient, ctx)
    coverage = st.last
    if coverage is None or coverage.get("resourceType") != "Coverage":
        return
    fm.apply(fm.IN2, seg, coverage, ctx)
    holder = coverage.get("policyHolder")
    if holder is not None and (seg.raw(49) or seg.raw(50) or seg.raw(64)):
        found = ctx.entries.get(_rid_in(holder["reference"]))
        if found is not None and found.rtype == "Organization":
            _insured_employer(ctx, seg, found.resource)
    subscriber = coverage.get("subscriber")
    if subscriber is None or subscriber == ctx.patient_ref:
        return
    entry = ctx.entries.get(_rid_in(subscriber["reference"]))
    if entry is not None and entry.rtype == "RelatedPerson":
        fm.apply(fm.IN2_INSURED, seg, entry.resource, ctx)


def _insured_employer(ctx: Context, seg: Segment, org: Json) -> None:
    """IN2 (no IG table) about the insured's employer, the Coverage's policy holder (IN1-11, the
    insured's group employer): its contact person (IN2-49 name, IN2-50 phones) is a contact of
    that Organization, the insured's employer phone (IN2-64) one of its telecoms."""
    person: Json = {}
    names = [n for n in (dt.xpn_human_name(rep, ctx) for rep in seg.reps(49)) if n]
    if names:
        person["name"] = names[0]  # Organization.contact.name is one name
    phones = [t for t in (dt.xtn_contact_point(rep, ctx) for rep in seg.reps(50)) if t]
    if phones:
        person["telecom"] = phones
    if person:
        contacts = org.setdefault("contact", [])
        if person not in contacts:
            contacts.append(person)
    for rep in seg.reps(64):
        phone = dt.xtn_contact_point(rep, ctx)
        telecom = org.setdefault("telecom", []) if phone else None
        if phone and telecom is not None and phone not in telecom:
            telecom.append(phone)


def h_orc(ctx: Context, seg: Segment, st: State) -> None:
    """ORC starts an order group; the group's detail segment (OBR, RXO, RXE, RXA...) makes the
    resource, and an ORC without one becomes a ServiceRequest of its own."""
    _close_order(ctx, st)
    st.orc = seg
    st.order = st.order_ref = st.report = st.report_ref = None
    st.order_used = False
    st.pending_timing = []
    st.medication = st.medication_ref = None


def _close_order(ctx: Context, st: State) -> None:
    if st.orc is not None and not st.order_used and st.family != "VXU":
        _service_request(ctx, None, st)


def _service_request(ctx: Context, obr: Segment | None, st: State) -> None:
    if ctx.patient_ref is None:
        return
    res = _new("ServiceRequest")
    if st.orc is not None:
        fm.apply(fm.ORC_SR, st.orc, res, ctx)
    if obr is not None:
        fm.apply(fm.OBR_SR, obr, res, ctx)
        # IG OBR-29: the parent order, by its placer and filler numbers.
        parents = dt.eip_identifiers(obr.value(29), ctx) if obr.get(29) or obr.get(29, 2) else []
        for parent in parents:
            res.setdefault("basedOn", []).append({"type": "ServiceRequest", "identifier": parent})
    res.setdefault("status", "unknown")
    res["intent"] = "reflex-order" if obr is not None and obr.get(11) == "G" else "order"
    if st.orc is not None:
        _order_requester(ctx, st.orc, res)
    if obr is not None and obr.raw(17) and "requester" in res:
        # IG OBR-17: the order callback phone number, on the requester reference.
        phone = dt.xtn_contact_point(obr.value(17), ctx)
        if phone:
            ext = {"url": _SD + "servicerequest-order-callback-phone-number", "valueContactPoint": phone}
            res["requester"] = {**res["requester"], "extension": [ext]}  # a copy: references are shared
    res["subject"] = ctx.patient_ref
    if st.encounter_ref is not None:
        res["encounter"] = st.encounter_ref
    if not st.pending_timing:
        # IG TQ[ServiceRequest]: ORC-7, else OBR-27 (the quantity/timing TQ1 later replaced).
        tq_reps = st.orc.reps(7) if st.orc is not None and st.orc.raw(7) else []
        if not tq_reps and obr is not None and obr.raw(27):
            tq_reps = obr.reps(27)
        if tq_reps:
            _order_tq(ctx, tq_reps[0], res)
    ident = _first_ident(res)
    seg = obr or st.orc
    key = (seg.name, str(seg.index)) if seg is not None else ()
    _apply_pending_timing(ctx, st, res)
    st.order_ref = ctx.add(res, ident=ident, key=key)
    st.order = st.last = _stored(ctx, st.order_ref, res)
    if st.orc is not None:
        _order_provenance(ctx, st.orc, st.order_ref)
    st.order_used = True
    st.focus.append(st.order_ref)


#: TQ.3 duration prefixes (HL7 v2.5 TQ.3: S seconds, M minutes, H hours, D days, W weeks,
#: L months) -> UCUM.
_TQ_DURATION = {"S": "s", "M": "min", "H": "h", "D": "d", "W": "wk", "L": "mo"}


def _order_tq(ctx: Context, tq: Value, res: Json) -> None:
    """TQ -> the ServiceRequest's quantity, timing, priority and note (IG ``TQ[ServiceRequest]``,
    ``RI[Timing]``)."""
    if tq.get(1):
        quantity = dt.cq_quantity(tq.component(1), ctx)
        if quantity:
            res.setdefault("quantityQuantity", quantity)
    timing, repeat = _ri_timing(tq)
    bounds = _tq_bounds(ctx, tq)
    if bounds:
        repeat["boundsPeriod"] = bounds
    else:
        duration = _tq_duration(tq.get(3))
        if duration is not None:
            amount, unit = duration
            repeat["boundsDuration"] = {"value": amount, "unit": unit, "system": _UCUM, "code": unit}
    _tq_count(tq, repeat)
    if repeat:
        timing["repeat"] = repeat
    if timing and "occurrenceTiming" not in res and "occurrencePeriod" not in res:
        when = res.pop("occurrenceDateTime", None)
        if when:
            timing["event"] = [when]  # OBR-6 (requested time) kept as the timing's event
        res["occurrenceTiming"] = timing
    _tq_priority_and_note(tq, res)


def _ri_timing(tq: Value) -> tuple[Json, Json]:
    """TQ.2 interval (IG ``RI[Timing]``) -> a Timing with its code and the start of its repeat
    (times of day); the callers add bounds, duration and count."""
    timing: Json = {}
    repeat: Json = {}
    interval = tq.component(2)
    pattern = interval.get(1)
    if pattern:
        timing["code"] = _repeat_pattern(pattern)
    times = [t for t in (_time_of_day(x) for x in interval.get(2).split(",")) if t]
    if times:
        repeat["timeOfDay"] = times
    return timing, repeat


def _repeat_pattern(code: str) -> Json:
    """A repeat pattern code (RI.1 of TQ.2, RPT.1 of TQ1-3) -> Timing.code: through the IG's
    RepeatPattern map (both datatype maps name it), else as a table 0335 code."""
    hit = dt.lookup("RepeatPattern", code)
    if hit:
        return {"coding": [dt.coding(hit[0], hit[2], hit[1])]}
    return {"coding": [dt.coding(code, dt.V2_CS + "0335", dt.v2_display("0335", code) or None)]}


def _tq_bounds(ctx: Context, tq: Value) -> Json | None:
    """TQ.4 start / TQ.5 end -> a Period (None when neither is valued)."""
    start, end = dt.dtm(tq.get(4), ctx.default_tz), dt.dtm(tq.get(5), ctx.default_tz)
    if not (start or end):
        return None
    return {k: v for k, v in (("start", start), ("end", end)) if v}


def _tq_duration(text: str) -> tuple[int | float, str] | None:
    """TQ.3 duration (``M30``, ``D2``...) -> (amount, UCUM unit), or None."""
    unit = _TQ_DURATION.get(text[:1].upper()) if text else None
    amount = dt.number(text[1:]) if unit else None
    if unit is None or amount is None or amount < 0:
        return None
    return amount, unit


def _tq_count(tq: Value, repeat: Json) -> None:
    """TQ.12 total occurrences -> the repeat's count."""
    count = dt.integer(tq.get(12), 1)
    if count is not None:
        repeat["count"] = count


def _tq_priority_and_note(tq: Value, res: Json) -> None:
    """TQ.6 priority and TQ.8 text (a note) belong to the request, whichever kind it is."""
    prio = dt.lookup("ExtendedPriorityCodes", tq.get(6))
    if prio:
        res.setdefault("priority", prio[0])
    if tq.get(8):
        res.setdefault("note", []).append({"text": tq.get(8)})


def _order_requester(ctx: Context, orc: Segment, res: Json) -> None:
    """IG ORC-21..24: the requester in the ordering facility, a PractitionerRole; ORC-38 the
    filler's order group number; ORC-4 sent as an EIP (v2.8.2) the placer group number and,
    without ORC-38, the filler group number."""
    if orc.get(38):
        ident = {"value": orc.get(38), "type": {"coding": [dt.coding("FGN", dt.V2_CS + "0203")]}}
        res.setdefault("identifier", []).append(ident)
    if ctx.delimiters.subcomponent in orc.raw(4):
        groups = dt.eip_identifiers(orc.value(4), ctx)
        placer = next((g for g in groups if g["type"]["coding"][0]["code"] == "PGN"), None)
        if placer is not None:
            res["requisition"] = placer
        else:
            res.pop("requisition", None)
        filler = next((g for g in groups if g["type"]["coding"][0]["code"] == "FGN"), None)
        if filler is not None and not orc.get(38):
            res.setdefault("identifier", []).append(filler)
    _requester_facility(ctx, orc, res)


def _requester_facility(ctx: Context, orc: Segment, res: Json) -> None:
    """IG ORC-21..24: the ordering facility (its address and phones) and the requester in it,
    a PractitionerRole."""
    if not orc.get(21):
        return
    org_ref = ctx.organization_from_xon(orc.value(21))
    _add_address_and_phones(ctx, orc, org_ref, 22, 23)
    person = res.get("requester")
    if person is None or org_ref is None or not person.get("reference"):
        return
    if orc.get(24):
        practitioner = ctx.entries.get(_rid_in(person["reference"]))
        address = dt.xad_address(orc.value(24), ctx)
        if practitioner is not None and address:
            practitioner.resource.setdefault("address", [address])
    role = {"resourceType": "PractitionerRole", "practitioner": person, "organization": org_ref}
    role["code"] = [{"coding": [dt.coding("OP", dt.V2_CS + "0443", "Ordering Provider")]}]  # ORC-12
    rid = resource_id("PractitionerRole", _rid_in(person["reference"]), "", _rid_in(org_ref["reference"]))
    res["requester"] = ctx.add_shared(role, rid)


def _obr_specimen(ctx: Context, obr: Segment, st: State) -> Json | None:
    """IG ``OBR[Specimen]``: the specimen of an OBR that says how or when it was collected,
    unless the order group has SPM segments (the specimen's own segment, which then maps it)."""
    if not (obr.get(7) or obr.get(9) or obr.get(10) or obr.get(14) or obr.get(15)):
        return None
    names = st.segment_names(ctx)
    for name in names[obr.index + 1 :]:
        if name == "SPM":
            return None
        if name in ("OBR", "ORC"):
            break
    spec = fm.apply(fm.OBR_SPECIMEN, obr, _new("Specimen"), ctx)
    source = dt.sps_specimen(obr.value(15), ctx) if obr.raw(15) else None
    if source:
        # IG OBR-15 (SPS[Specimen-Source]): type, additive, note, body site and condition.
        collection = source.pop("collection", None)
        if collection:
            spec.setdefault("collection", {}).update(collection)
        spec.update(source)
    if len(spec) == 1:
        return None
    if obr.get(2):
        accession = dt.ei_identifier(obr.value(2), ctx)
        if accession:
            spec["accessionIdentifier"] = accession
    _subject(ctx, spec)
    return ctx.add(spec, key=("OBR", str(obr.index), "Specimen"))


_DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
_ORDER_ACTIVITY = {"NW": "CREATE", "SC": "UPDATE", "OC": "CANCEL", "CA": "CANCEL"}
_PROVENANCE_PT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


def _order_provenance(ctx: Context, orc: Segment, target: Json) -> None:
    """IG ``ORC[Provenance]``: who entered, verified, ordered and performed the order action
    (ORC-10/11/12/19), when (ORC-9), which action (ORC-1)."""
    if not ctx.options.provenance:
        return
    recorded = dt.instant(orc.get(9), ctx.default_tz)
    if recorded is None:
        return  # Provenance.recorded is a required instant
    agents: list[Json] = []
    fields = orc.raw_fields()
    width = len(fields)
    for field, code in ((10, "enterer"), (11, "verifier"), (12, "author"), (19, "performer")):
        if field < width and fields[field] not in ("", '""'):
            who = ctx.practitioner_from_xcn(orc.value(field))
            if who is not None:
                agents.append({"type": {"coding": [dt.coding(code, _PROVENANCE_PT)]}, "who": who})
    if width > 18 and fields[18] not in ("", '""'):
        device = _entering_device(ctx, orc.value(18))
        if device is not None:
            agents.append({"who": device})  # IG ORC-18: agent[5], the entering device
    if not agents:
        return
    if width > 17 and fields[17]:
        org = dt.cwe_organization(orc.value(17), ctx)
        if org is not None:
            agents[0]["onBehalfOf"] = org
    prov: Json = {"resourceType": "Provenance", "target": [target], "recorded": recorded}
    prov["occurredDateTime"] = dt.dtm(orc.get(9), ctx.default_tz) or recorded
    activity = _ORDER_ACTIVITY.get(orc.get(1))
    if activity:
        prov["activity"] = {"coding": [dt.coding(activity, _DATA_OPERATION)]}
    prov["agent"] = agents
    if width > 24 and fields[24] and width > 12 and fields[12]:
        # IG ORC-24: the ordering provider's (ORC-12, the author agent) address.
        author = next((a for a in agents if a["type"]["coding"][0]["code"] == "author"), None)
        if author is not None:
            _practitioner_address(ctx, author["who"], orc, 24)
    if width > 21 and fields[21]:
        where = _ordering_facility(ctx, orc)
        if where is not None:
            prov["location"] = where
    if width > 28 and fields[28]:
        label = dt.cwe_coding(orc.value(28), ctx, "ConfidentialityCode")
        if label:
            prov["meta"] = {"security": [label]}
    ctx.add(prov, key=("ORC", str(orc.index), "Provenance"))


def _entering_device(ctx: Context, v: Value) -> Json | None:
    """IG CWE[Device]: the device's identifiers (CWE.1/3, CWE.4/6, CWE.10/12) and names
    (CWE.2, CWE.5, CWE.11; CWE.9 original text)."""
    c = dt.comps(v, ctx)
    idents: list[Json] = []
    for code_i, sys_i in ((1, 3), (4, 6), (10, 12)):
        if c[code_i]:
            ident: Json = {"value": c[code_i]}
            system = dt.code_system(c[sys_i], ctx) if c[sys_i] else None
            if system:
                ident = {"system": system, **ident}
            idents.append(ident)
    names = [{"name": c[i], "type": "user-friendly-name"} for i in (2, 5, 11) if c[i]]
    if c[9]:
        names.append({"name": c[9], "type": "other"})
    if not (idents or names):
        return None
    device: Json = {"resourceType": "Device"}
    if idents:
        device["identifier"] = idents
    if names:
        device["deviceName"] = names
    if idents and "system" in idents[0]:
        return ctx.add(device, ident=idents[0])
    return ctx.add_shared(device, resource_id("Device", ctx.scope, "ORC-18", c[1], c[2]))


def _ordering_facility(ctx: Context, orc: Segment) -> Json | None:
    """IG ORC-21/22/23 (XON[Location]): the ordering facility as a Location, with its name and
    identifier (XON.1, XON.10 or XON.3 in the XON.6 system), address (ORC-22) and phone (ORC-23)."""
    xon = orc.value(21)
    name, ident_value = xon.get(1), xon.get(10) or xon.get(3)
    if not (name or ident_value):
        return None
    place: Json = {"resourceType": "Location"}
    if name:
        place["name"] = name
    if ident_value:
        ident: Json = {"value": ident_value}
        system = dt.hd_system_of(xon.component(6), ctx) if xon.get(6) else None
        if system:
            ident = {"system": system, **ident}
        place["identifier"] = [ident]
    addresses = [a for a in (dt.xad_address(r, ctx) for r in orc.reps(22)) if a] if orc.get(22) else []
    if addresses:
        place["address"] = addresses[0]  # Location.address is single
    phones = [t for t in (dt.xtn_contact_point(r, ctx) for r in orc.reps(23)) if t] if orc.raw(23) else []
    if phones:
        place["telecom"] = phones
    return ctx.add_shared(place, resource_id("Location", ctx.scope, "ORC-21", name, ident_value))


def _forget_order(st: State) -> None:
    st.order = None
    st.specimen = None


def h_obr(ctx: Context, seg: Segment, st: State) -> None:
    """OBR -> ServiceRequest (with its ORC), the Specimen the OBR describes, and in result
    groups a DiagnosticReport."""
    # Not `st.order = None`: mypy (and so mypyc) would keep st.order narrowed to None across
    # the call below, which sets it.
    _forget_order(st)
    _service_request(ctx, seg, st)
    if ctx.patient_ref is None or not _reports_results(ctx, seg, st):
        if st.order is not None and ctx.patient_ref is not None:
            # IG OML_O21: OBR[Specimen], the ServiceRequest's specimen.
            specimen = _obr_specimen(ctx, seg, st)
            if specimen is not None:
                st.order.setdefault("specimen", []).append(specimen)
        return
    rep = fm.apply(fm.OBR_DR, seg, _new("DiagnosticReport"), ctx)
    if st.orc is not None:
        fm.apply(fm.ORC_DR, st.orc, rep, ctx)
    rep.setdefault("status", "unknown")
    if "code" not in rep:
        rep["code"] = {"text": "unknown"}
    rep["subject"] = ctx.patient_ref
    if st.encounter_ref is not None:
        rep["encounter"] = st.encounter_ref
    if st.order_ref is not None:
        rep["basedOn"] = [st.order_ref]
    specimen = _obr_specimen(ctx, seg, st)
    if specimen is not None:
        rep["specimen"] = [specimen]
    st.report_ref = ctx.add(rep, ident=_first_ident(rep), key=("OBR", str(seg.index)))
    st.report = _stored(ctx, st.report_ref, rep)
    st.focus.append(st.report_ref)


#: Families whose OBX after an OBR are order details (IG ORM_O01 / OML_O21: ask-at-order-entry
#: answers, ServiceRequest.supportingInfo), or document content (MDM), not reported results.
_ORDER_DETAIL_FAMILIES = frozenset({"ORM", "OML", "OMG", "OMI", "OMB", "OMD", "OMN", "OMS", "OMQ", "MDM"})


def _reports_results(ctx: Context, obr: Segment, st: State) -> bool:
    """Whether the OBR's group reports results (a DiagnosticReport): always in result messages
    (IG ORU_R01); in other families without an IG message map (DFT, BAR, REF...) when its ORC
    says results follow (ORC-1 'RE') or OBX follow the OBR in its group, as in a result
    message's ORDER_OBSERVATION group."""
    if st.family in RESULT_FAMILIES:
        return True
    if st.family in _ORDER_DETAIL_FAMILIES or st.family in PHARMACY_FAMILIES:
        return False
    if st.orc is not None and st.orc.get(1) == "RE":
        return True  # order control "observations to follow"
    for name in st.segment_names(ctx)[obr.index + 1 :]:
        if name == "OBX":
            return True
        if name in ("OBR", "ORC"):
            break
    return False


def h_obx(ctx: Context, seg: Segment, st: State) -> None:
    """OBX -> Observation (document content in MDM; DiagnosticReport.presentedForm for ED/RP)."""
    fields = seg.raw_fields()
    vtype = fields[2].upper() if len(fields) > 2 else ""
    if st.family == "MDM" and st.document is not None:
        _document_content(seg, vtype, st.document)
        return
    if vtype in ("ED", "RP") and st.report is not None:
        att = _attachment(seg.value(5)) if vtype == "ED" else _rp_attachment(seg.value(5))
        if att:
            st.report.setdefault("presentedForm", []).append(att)
            return
    if ctx.patient_ref is None and st.family not in RESULT_FAMILIES:
        return
    res = fm.apply(fm.OBX, seg, _new("Observation"), ctx)
    result_status = fields[11] if len(fields) > 11 else ""
    if result_status in ("N", "X") or (result_status and "status" not in res):
        _result_status_extras(result_status, res)
    res.setdefault("status", "unknown")
    if "code" not in res:
        res["code"] = {"text": "unknown"}
    _observation_value(ctx, seg, vtype, res)
    _observation_roles(ctx, seg, res)
    if ctx.patient_ref is not None:
        res["subject"] = ctx.patient_ref
    if st.encounter_ref is not None:
        res["encounter"] = st.encounter_ref
    if st.order_ref is not None and (st.report is not None or st.family in RESULT_FAMILIES):
        res["basedOn"] = [st.order_ref]
    if st.immunization is not None and st.family == "VXU":
        res["partOf"] = [ctx.ref("Immunization", _rid_of(ctx, st.immunization))]
        _immunization_detail(ctx, seg, st.immunization)
    ident = _first_ident(res) if "identifier" in res else None
    key: tuple[str, ...] = ("OBX", str(seg.index))
    if ident is None:
        group = st.report or st.order or {}
        if st.group_ident[0] is not group:
            st.group_ident = (group, _first_ident(group))  # once per order group, not per OBX
        order_ident = st.group_ident[1]
        if order_ident is not None:
            # Results have no id of their own: filler order + code + sub-id names them, so a
            # corrected result updates the same Observation.
            value = "-".join(
                p
                for p in (order_ident["value"], _first_component(ctx, seg, fields, 3), seg.get(4), seg.get(1))
                if p
            )
            ident = {"system": order_ident.get("system") or ctx.sender_system or "", "value": value}
            if not ident["system"]:
                ident = None
            else:
                res.setdefault("identifier", []).append(ident)
    ref = ctx.add(res, ident=ident, key=key)
    st.observation_ref = ref
    stored = st.last = _stored(ctx, ref, res)
    # An OBX repeated with the same identifiers is the same Observation: listed once (a new
    # Observation cannot be listed yet, so only a merged one is looked for).
    if st.report is not None:
        results = st.report.setdefault("result", [])
        if stored is res or ref not in results:
            results.append(ref)
    elif st.order is not None and st.family not in RESULT_FAMILIES:
        info = st.order.setdefault("supportingInfo", [])
        if stored is res or ref not in info:
            info.append(ref)


def _result_status_extras(status: str, res: Json) -> None:
    """IG OBX-11: 'X' (no result) keeps the v2 code beside status (alternate-codes); 'N' (not
    asked) is the data-absent reason. A code the IG map does not translate (S, I, O, R, U...)
    is kept beside status "unknown" the way 'X' is."""
    if status != "N":
        alternate = {"coding": [dt.coding(status, dt.V2_CS + "0085")]}
        res["_status"] = {"extension": [{"url": _SD + "alternate-codes", "valueCodeableConcept": alternate}]}
    else:
        reason = dt.coding(
            "not-asked", "http://terminology.hl7.org/CodeSystem/data-absent-reason", "Not Asked"
        )
        res["dataAbsentReason"] = {"coding": [reason]}


def _first_component(ctx: Context, seg: Segment, fields: list[str], n: int) -> str:
    """``seg.get(n)`` (decoded first component) read from the split ``fields`` when the text
    has nothing to decode (no escape, sub-component or repetition), which is nearly always."""
    raw = fields[n] if n < len(fields) else ""
    d = ctx.delimiters
    if raw and (d.escape in raw or d.subcomponent in raw or d.repetition in raw or raw == '""'):
        return seg.get(n)
    return raw.split(d.component, 1)[0]


_PRACTITIONER_ROLE = "http://terminology.hl7.org/CodeSystem/practitioner-role"


def _observation_roles(ctx: Context, seg: Segment, res: Json) -> None:
    """IG OBX-16 (responsible observer) and OBX-25 (medical director, of the OBX-23
    organisation) -> performer PractitionerRoles; OBX-18 device, OBX-24 performing organisation
    address, OBX-29 category, OBX-33 specimen."""
    fields = seg.raw_fields()
    if len(fields) <= 16:
        return  # none of these fields is present (most OBX stop at OBX-14)
    fields = [f if f != '""' else "" for f in fields] + _EMPTY_FIELDS
    if fields[16]:
        for rep in seg.reps(16):
            person = ctx.practitioner_from_xcn(rep)
            if person is not None:
                code = dt.coding("responsibleObserver", _PRACTITIONER_ROLE, "responsible observer")
                res.setdefault("performer", []).append(_practitioner_role(ctx, person, code, None))
    if fields[25]:
        person = ctx.practitioner_from_xcn(seg.value(25))
        if person is not None:
            org = ctx.organization_from_xon(seg.value(23)) if fields[23] else None
            code = dt.coding("MDIR", dt.V2_CS + "0912", dt.v2_display("0912", "MDIR") or "Medical Director")
            res.setdefault("performer", []).append(_practitioner_role(ctx, person, code, org))
    if fields[24] and fields[23]:
        # IG OBX-24: the performing organisation's address (OBX-23's Organization).
        org_ref = ctx.organization_from_xon(seg.value(23))
        address = dt.xad_address(seg.value(24), ctx)
        org_entry = ctx.entries.get(_rid_in(org_ref["reference"])) if org_ref else None
        if org_entry is not None and address:
            org_entry.resource.setdefault("address", []).append(address)
    if fields[18]:
        # IG OBX-18 -> device(Device.identifier): the equipment instance, one Device with an
        # identifier per repetition (EI.4 as its type; an authority alone is still its system).
        idents = [i for i in (dt.ei_identifier_system(rep, ctx) for rep in seg.reps(18)) if i]
        if idents:
            main = next((i for i in idents if i.get("value")), None)
            device = {"resourceType": "Device", "identifier": idents}
            res.setdefault("device", ctx.add(device, ident=main, key=(seg.name, str(seg.index), "18")))
    if fields[30]:
        # IG OBX-30: the observation sub-type, as the observation-structure-type extension.
        sub = {"coding": [dt.coding(seg.get(30), _SD + "observation-structure-type")]}
        res.setdefault("extension", []).append(
            {"url": _SD + "observation-structure-type", "valueCodeableConcept": sub}
        )
    if fields[29]:
        kind = seg.get(29)
        res["category"] = [
            {"coding": [dt.coding(kind, dt.V2_CS + "0936", dt.v2_display("0936", kind) or None)]}
        ]
    if fields[33]:
        specimens = seg.reps(33)
        if len(specimens) == 1:
            # IG OBX-33 (one specimen): the Specimen with those placer/filler identifiers.
            idents = dt.eip_identifiers(specimens[0], ctx)
            if idents:
                spec = {"resourceType": "Specimen", "identifier": idents}
                _subject(ctx, spec)
                res["specimen"] = ctx.add(spec, ident=idents[0])


_EMPTY_FIELDS = [""] * 40


def _practitioner_role(ctx: Context, person: Json, code: Json, org: Json | None) -> Json:
    role: Json = {"resourceType": "PractitionerRole", "practitioner": person, "code": [{"coding": [code]}]}
    if org is not None:
        role["organization"] = org
    rid = resource_id(
        "PractitionerRole",
        _rid_in(person["reference"]),
        code["code"],
        _rid_in(org["reference"]) if org else "",
    )
    return ctx.add_shared(role, rid)


def _rid_of(ctx: Context, res: Json) -> str:
    for rid, e in ctx.entries.items():
        if e.resource is res:
            return rid
    return ""


def _observation_value(ctx: Context, seg: Segment, vtype: str, res: Json) -> None:
    if vtype == "NM":
        # The usual result: a plain number, read from the field text (no Value objects).
        raw = seg.raw(5)
        delims = ctx.delimiters
        if not any(
            c in raw for c in (delims.repetition, delims.component, delims.subcomponent, delims.escape)
        ):
            n = dt.number(raw)
            if n is not None:
                res["valueQuantity"] = {"value": n, **dt.cwe_quantity_unit(seg.value(6), ctx)}
                return
    reps = seg.reps(5)
    if not reps:
        return
    if len(reps) > 1 and vtype not in _TEXT_LINES and vtype != "NA":  # IG: NA is no component
        _observation_components(ctx, seg, vtype, reps, res)
        return
    if vtype in ("ED", "RP"):
        # IG OBX-5 ED (Base64) / RP: the attachment, as R5's Observation.valueAttachment.
        att = _attachment(reps[0]) if vtype == "ED" else _rp_attachment(reps[0])
        if att:
            res.setdefault("extension", []).append({"url": _VALUE_ATTACHMENT, "valueAttachment": att})
        return
    if _rep_value(ctx, seg, vtype, reps[0], res):
        return
    texts = [r.text() if vtype in _TEXT_LINES else " ".join(p for p in r.parts() if p) for r in reps]
    text = "\n".join(t for t in texts if t)
    if text:
        res["valueString"] = text


#: Value types whose OBX-5 repetitions are the lines of one text (one valueString), not values.
_TEXT_LINES = frozenset({"TX", "FT"})


def _observation_components(ctx: Context, seg: Segment, vtype: str, reps: list[Value], res: Json) -> None:
    """IG ``OBX[Observation-Component]``: a repeating OBX-5 gives one component per value, each
    with the OBX-3 code, its value and the OBX-7 reference range (which moves off the parent)."""
    ranges = res.pop("referenceRange", None)
    code = res.get("code")
    components: list[Json] = []
    for rep in reps:
        comp: Json = {"code": code} if code else {"code": {"text": "unknown"}}
        if not _rep_value(ctx, seg, vtype, rep, comp):
            if vtype in ("ED", "RP"):
                continue
            text = " ".join(p for p in rep.parts() if p)
            if not text:
                continue
            comp["valueString"] = text
        if ranges:
            comp["referenceRange"] = ranges
        components.append(comp)
    if components:
        res["component"] = components


def _rep_value(ctx: Context, seg: Segment, vtype: str, v: Value, res: Json) -> bool:
    """One OBX-5 value of a typed (not text) value type -> ``value[x]`` of ``res``."""
    if vtype == "NM":
        n = dt.number(v.get(1))
        if n is not None:
            q: Json = {"value": n}
            q.update(dt.cwe_quantity_unit(seg.value(6), ctx))
            res["valueQuantity"] = q
            return True
    elif vtype in ("CWE", "CE", "CNE", "CF", "IS", "ID"):
        cc = dt.cwe_codeable_concept(v, ctx)
        if cc:
            res["valueCodeableConcept"] = cc
            return True
    elif vtype in ("DT", "DTM", "TS"):
        d = dt.dtm(v.get(1), ctx.default_tz)
        if d:
            res["valueDateTime"] = d
            return True
    elif vtype == "TM":
        # TM: HHMM[SS[.S...]][+/-ZZZZ]; FHIR time has neither fraction nor zone.
        t = _time_of_day(re.split(r"[.+-]", v.get(1).strip(), maxsplit=1)[0])
        if t:
            res["valueTime"] = t
            return True
    elif vtype == "SN":
        return _structured_numeric(ctx, seg, v, res)
    elif vtype == "NR":
        rng = dt.nr_range(v, ctx)
        if rng:
            res["valueRange"] = rng
            return True
    elif vtype == "DR":
        period = dt.dr_period(v, ctx)
        if period:
            res["valuePeriod"] = period
            return True
    return False


def _structured_numeric(ctx: Context, seg: Segment, v: Value, res: Json) -> bool:
    """SN -> valueRatio (SN.3 ':' or '/'), valueRange ('-') or valueQuantity (IG SN[Ratio],
    SN[Range], SN[Quantity]); when SN.3 or SN.4 is valued, the SN as written is kept as the
    value's originalText extension (so "5+" is not read as a bare 5). False when none fits."""
    comp, n1, sep, n2 = v.get(1), dt.number(v.get(2)), v.get(3), dt.number(v.get(4))
    unit = dt.cwe_quantity_unit(seg.value(6), ctx)
    if n1 is None:
        return False
    if sep in (":", "/") and n2 is not None:
        ratio: Json = {"numerator": {"value": n1, **unit}, "denominator": {"value": n2, **unit}}
        res["valueRatio"] = _sn_original_text(v, ratio)
        return True
    if sep in ("-", "+") and n2 is not None:
        if sep == "-":
            rng: Json = {"low": {"value": n1, **unit}, "high": {"value": n2, **unit}}
            res["valueRange"] = _sn_original_text(v, rng)
            return True
        return False
    q: Json = {"value": n1, **unit}
    if comp in ("<", ">", "<=", ">="):
        q["comparator"] = comp
    elif comp not in ("", "="):
        return False
    res["valueQuantity"] = _sn_original_text(v, q) if sep or v.get(4) else q
    return True


def _sn_original_text(v: Value, value: Json) -> Json:
    """``value`` with the SN's parts (SN.1..4, space separated) as its originalText extension."""
    text = " ".join(p for p in (v.get(1), v.get(2), v.get(3), v.get(4)) if p)
    value["extension"] = [{"url": _SD + "originalText", "valueString": text}]
    return value


_VALUE_ATTACHMENT = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Observation.valueAttachment"
#: HL7 table 0191 (type of referenced data) -> MIME top-level type.
_MIME_TYPE = {"IM": "image", "AU": "audio", "AP": "application", "TX": "text", "TEXT": "text"}


def _content_type(kind: str, sub: str) -> str | None:
    """ED.2/ED.3 or RP.3/RP.4 (type, subtype) -> a MIME type (``image/jpeg`` for IM/JPEG), or
    None when the parts cannot make one (blank, or with spaces inside)."""
    kind, sub = kind.strip(), sub.strip()
    if not kind:
        return None
    if "/" in kind:
        mime = kind.lower()
    else:
        top = _MIME_TYPE.get(kind.upper(), kind.lower())
        mime = f"{top}/{sub.lower()}" if sub else top
    return None if any(ch.isspace() for ch in mime) else mime


def _rp_attachment(v: Value) -> Json | None:
    """RP -> Attachment (IG ``RP[Attachment]``): RP.1 pointer the url, RP.3/RP.4 the type."""
    pointer = v.get(1)
    if not pointer or any(c.isspace() for c in pointer):
        return None  # Attachment.url is a url: no whitespace
    att: Json = {"url": pointer}
    content_type = _content_type(v.get(3), v.get(4))
    if content_type:
        att["contentType"] = content_type
    return att


def _attachment(v: Value) -> Json | None:
    data = v.get(5)
    if not data:
        return None
    att: Json = {}
    content_type = _content_type(v.get(2), v.get(3))
    if content_type:
        att["contentType"] = content_type
    packed = "".join(data.split())
    if v.get(4).upper() == "BASE64" and _is_base64(packed):
        att["data"] = packed
    else:
        att["data"] = base64.b64encode(data.encode("utf-8")).decode("ascii")
    return att


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except ValueError:
        return False
    return True


def _document_content(seg: Segment, vtype: str, doc: Json) -> None:
    if vtype == "ED":
        att = _attachment(seg.value(5))
        if att:
            doc.setdefault("content", []).append({"attachment": att})
        return
    text = "\n".join(r.text() for r in seg.reps(5))
    if not text:
        return
    data = base64.b64encode(text.encode("utf-8")).decode("ascii")
    contents = doc.setdefault("content", [])
    for c in contents:
        att = c.get("attachment", {})
        if att.get("contentType") == "text/plain" and "data" in att:
            old = base64.b64decode(att["data"]).decode("utf-8")
            att["data"] = base64.b64encode((old + "\n" + text).encode("utf-8")).decode("ascii")
            return
    contents.append({"attachment": {"contentType": "text/plain", "data": data}})


_DOC_AVAILABILITY = {"AV": "current", "OB": "superseded", "CA": "entered-in-error", "UN": "current"}
#: Table 0271 document completion status -> composition-status (docStatus's required binding).
_DOC_COMPLETION = {
    "AU": "final",
    "LA": "final",
    "DI": "preliminary",
    "DO": "preliminary",
    "IN": "preliminary",
    "IP": "preliminary",
    "PA": "preliminary",
}


def _finish_document(doc: Json, txa: Segment, ctx: Context) -> None:
    """DocumentReference.content is required: without OBX content, a title-only attachment.
    TXA-6 (origination) is also each attachment's creation time."""
    if not doc.get("content"):
        title = txa.get(2, 2) or txa.get(2) or txa.get(12) or "document"
        att: Json = {"title": title}
        if "/" in txa.get(3):
            att["contentType"] = txa.get(3)
        doc["content"] = [{"attachment": att}]
    created = dt.dtm(txa.get(6), ctx.default_tz) if txa.get(6) else None
    if created:
        for content in doc["content"]:
            content["attachment"].setdefault("creation", created)


def h_nte(ctx: Context, seg: Segment, st: State) -> None:
    """NTE -> a note on the resource it follows (an order when it follows the report)."""
    text = "\n".join(r.text() for r in seg.reps(3)).strip()
    if not text:
        return
    target = st.last
    if target is not None and target.get("resourceType") == "DiagnosticReport":
        target = st.order
    if target is None:
        return
    rtype = target.get("resourceType")
    if rtype not in _HAS_NOTE and rtype != "Appointment":
        return
    # IG NTE[Observation]/NTE[ServiceRequest]/NTE[Appointment-Comment]: NTE-3 text, NTE-5
    # author, NTE-6 time.
    note: Json = {"text": text}
    author = ctx.practitioner_from_xcn(seg.value(5)) if seg.get(5) else None
    if author is not None:
        note["authorReference"] = author
    when = dt.dtm(seg.get(6), ctx.default_tz)
    if when and "T" in when:
        note["time"] = when
    if rtype != "Appointment":
        target.setdefault("note", []).append(note)
        return
    # An R4 Appointment has one comment string (all NTEs, a line each); the IG also keeps each
    # note whole, with its author, time and NTE-4 type, as the R5 Appointment.note extension.
    if target is not st.resource_notes:
        target["comment"] = (target.get("comment", "") + "\n" + text).strip()
    kind = dt.cwe_codeable_concept(seg.value(4), ctx) if seg.get(4) else None
    if kind:
        note["extension"] = [{"url": _SD + "annotationType", "valueCodeableConcept": kind}]
    coded_reps = seg.reps(9) if seg.raw(9) else []
    for coded_rep in coded_reps:
        # IG NTE-9 (coded comment): each coded form of the note as an alternate-codes extension.
        coded = dt.cwe_codeable_concept(coded_rep, ctx)
        if coded:
            note.setdefault("extension", []).append(
                {"url": _SD + "alternate-codes", "valueCodeableConcept": coded}
            )
    target.setdefault("extension", []).append({"url": _APPOINTMENT_NOTE, "valueAnnotation": note})


_APPOINTMENT_NOTE = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.note"


def h_spm(ctx: Context, seg: Segment, st: State) -> None:
    """SPM -> Specimen, linked from the report and order."""
    res = fm.apply(fm.SPM, seg, _new("Specimen"), ctx)
    boxes = res.get("container")
    if (
        boxes
        and len(boxes) > 1
        and list(boxes[0]) == ["type"]
        and list(boxes[1]) == ["additiveCodeableConcept"]
    ):
        # IG SPM-27 / SPM-6: the container's type and (first) additive describe one container.
        res["container"] = [{**boxes[0], **boxes[1]}, *boxes[2:]]
    idents: list[Json] = []
    for rep in seg.reps(2):
        idents.extend(dt.eip_identifiers(rep, ctx))
    if idents:
        res["identifier"] = idents + res.get("identifier", [])
    _subject(ctx, res)
    coll = seg.value(17)
    if coll.get(1):
        if coll.get(2):
            period = dt.dr_period(coll, ctx)
            if period:
                res.setdefault("collection", {})["collectedPeriod"] = period
        else:
            when = dt.dtm(coll.get(1), ctx.default_tz)
            if when:
                res.setdefault("collection", {})["collectedDateTime"] = when
    for rep in seg.reps(3):
        # IG SPM-3: the parent specimen, by its placer/filler identifiers.
        parent_ids = dt.eip_identifiers(rep, ctx)
        if parent_ids:
            parent = {"resourceType": "Specimen", "identifier": parent_ids}
            _subject(ctx, parent)
            res.setdefault("parent", []).append(ctx.add(parent, ident=parent_ids[0]))
    ident = _first_ident(res, ("FGN", "PGN"))
    ref = ctx.add(res, ident=ident, key=("SPM", str(seg.index)))
    if st.report is not None:
        st.report.setdefault("specimen", []).append(ref)
    if st.order is not None:
        st.order.setdefault("specimen", []).append(ref)
    st.last = st.specimen = _stored(ctx, ref, res)


def h_sac(ctx: Context, seg: Segment, st: State) -> None:
    """SAC (no IG table) in an SPM group (after the SPM and its OBX): the specimen's container
    (SAC-3 container identifier; SAC-21 container volume as its capacity, SAC-22 available
    specimen volume as its specimenQuantity, both in SAC-24 units) and accession identifier
    (SAC-2), when the SPM did not carry one."""
    spec = st.specimen
    if spec is None:
        return
    accession = dt.ei_identifier(seg.value(2), ctx) if seg.get(2) else None
    if accession and "accessionIdentifier" not in spec:
        spec["accessionIdentifier"] = accession
    box: Json = {}
    container = dt.ei_identifier(seg.value(3), ctx) if seg.get(3) else None
    if container:
        box["identifier"] = [container]
    for field, key in ((21, "capacity"), (22, "specimenQuantity")):
        amount = dt.number(seg.get(field)) if seg.get(field) else None
        if amount is not None and amount >= 0:
            box[key] = {"value": amount, **(dt.cwe_quantity_unit(seg.value(24), ctx) if seg.get(24) else {})}
    if box:
        containers = spec.setdefault("container", [])
        if len(containers) == 1 and not any(k in containers[0] for k in box):
            containers[0] = {**box, **containers[0]}  # the SPM-27/6 container
        else:
            containers.append(box)


_UCUM_TIME = {
    "s": "s",
    "min": "min",
    "h": "h",
    "hr": "h",
    "d": "d",
    "wk": "wk",
    "mo": "mo",
    "a": "a",
    "yr": "a",
    "ann": "a",  # ISO+ annum
}
_UCUM = "http://unitsofmeasure.org"


def _time_unit(code: str) -> str | None:
    """A time unit code (UCUM, ISO+ or ANSI, any case: 'D', 'Hr', 'ann') -> the UCUM code."""
    return _UCUM_TIME.get(code) or _UCUM_TIME.get(code.lower()) if code else None


def _tq1_timing(ctx: Context, seg: Segment) -> Json:
    """TQ1-3..8, 13, 14 -> Timing (IG ``TQ1[ServiceRequest]`` / ``TQ1[MedicationRequest]``)."""
    timing: Json = {}
    repeat: Json = {}
    rpt = seg.value(3)
    if rpt.get(1):
        # IG RPT[Timing]: RPT.1 the repeat pattern code, RPT.5/6 the period.
        timing["code"] = _repeat_pattern(rpt.get(1))
    period = dt.number(rpt.get(5))
    unit = _time_unit(rpt.get(6))
    if period is not None and unit:
        repeat["period"], repeat["periodUnit"] = period, unit
    if rpt.get(2).strip().upper() == "DW":
        # IG RPT.3/RPT.4 with calendar alignment DW (table 0527, the week begins with Monday):
        # the phase's first and last days as dayOfWeek.
        days = [
            _WEEKDAYS[n - 1] for n in (dt.integer(rpt.get(3), 1), dt.integer(rpt.get(4), 1)) if n and n <= 7
        ]
        if days:
            repeat["dayOfWeek"] = list(dict.fromkeys(days))
    when = dt.lookup("EventRelatedPeriod", rpt.get(8))
    if when:
        repeat["when"] = [when[0]]
    if rpt.get(9):
        offset = _offset_minutes(rpt.get(9), rpt.get(10))
        if offset is not None:
            repeat["offset"] = offset
    elif seg.get(5):
        offset = _offset_minutes(seg.get(5), seg.get(5, 2))
        if offset is not None:
            repeat["offset"] = offset
    start = dt.dtm(seg.get(7), ctx.default_tz)
    end = dt.dtm(seg.get(8), ctx.default_tz)
    if start or end:
        repeat["boundsPeriod"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    elif seg.get(6):
        bound = dt.cq_quantity(seg.value(6), ctx)
        if bound:
            ucum = _time_unit(seg.get(6, 2))
            if ucum:
                bound.update({"system": _UCUM, "code": ucum})
            repeat["boundsDuration"] = bound
    duration = dt.number(seg.get(13))
    duration_unit = _time_unit(seg.get(13, 2))
    if duration is not None and duration >= 0 and duration_unit:
        repeat["duration"], repeat["durationUnit"] = duration, duration_unit
    count = dt.integer(seg.get(14), 1)
    if count is not None:
        repeat["countMax"] = count
    times = [t for t in (_time_of_day(r.get(1)) for r in seg.reps(4)) if t]
    if times:
        repeat["timeOfDay"] = times
    if repeat:
        timing["repeat"] = repeat
    return timing


_SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86400}
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _offset_minutes(value: str, unit: str) -> int | None:
    """An RPT.9/RPT.10 or TQ1-5 offset as Timing.repeat.offset (whole minutes, unsignedInt);
    None when it is not a whole number of minutes (units default to minutes)."""
    n = dt.integer(value, 0)
    seconds = _SECONDS.get(_time_unit(unit) or "min" if unit else "min")
    if n is None or seconds is None:
        return None
    minutes, rest = divmod(n * seconds, 60)
    return None if rest or minutes > dt.INT_MAX else minutes


def _time_of_day(text: str) -> str | None:
    """TM (HHMM[SS], colons tolerated) -> FHIR time, or None when it is not a clock time."""
    digits = text.replace(":", "")
    if len(digits) not in (4, 6) or not digits.isdigit():
        return None
    hh, mm, ss = digits[:2], digits[2:4], digits[4:6] or "00"
    if int(hh) > 23 or int(mm) > 59 or int(ss) > 59:
        return None
    return f"{hh}:{mm}:{ss}"


def _medication_tq(ctx: Context, orc: Segment, res: Json) -> None:
    """ORC-7 (TQ, before v2.5's TQ1) -> the MedicationRequest's dosage (IG
    ``TQ[MedicationRequest]``): per repetition a dosage with TQ.1 dose, TQ.2 interval (RI[Timing]),
    TQ.3 duration, TQ.4/5 bounds and TQ.12 count; TQ.6 priority and TQ.8 text (a note) are the
    request's. The first repetition completes the dosage the RXO/RXE started."""
    for index, tq in enumerate(orc.reps(7)):
        timing, repeat = _ri_timing(tq)
        duration = _tq_duration(tq.get(3))
        if duration is not None:
            repeat["duration"], repeat["durationUnit"] = duration
        bounds = _tq_bounds(ctx, tq)
        if bounds:
            repeat["boundsPeriod"] = bounds
        _tq_count(tq, repeat)
        if repeat:
            timing["repeat"] = repeat
        dose = dt.cq_quantity(tq.component(1), ctx) if tq.get(1) else None
        dosage: Json = {"timing": timing} if timing else {}
        if index == 0 and "dosageInstruction" in res:
            first = res["dosageInstruction"][0]
            if timing:
                first.setdefault("timing", timing)
            rates = first.setdefault("doseAndRate", [{}]) if dose else None
            if rates is not None and not any(k.startswith("dose") for k in rates[0]):
                rates[0]["doseQuantity"] = dose  # dose[x] is a choice: an RXO dose range stays
        else:
            if dose:
                dosage["doseAndRate"] = [{"doseQuantity": dose}]
            if dosage:
                res.setdefault("dosageInstruction", []).append(dosage)
        _tq_priority_and_note(tq, res)


def h_tq1(ctx: Context, seg: Segment, st: State) -> None:
    """TQ1 -> timing, quantity, priority and instructions of the ServiceRequest (IG
    ``TQ1[ServiceRequest]``) or of the MedicationRequest's dosage (IG ``TQ1[MedicationRequest]``).
    A TQ1 between ORC and its OBR/RXO/RXE waits for that resource."""
    if st.appointment is not None and st.orc is None and st.last is st.appointment:
        # The SCH's timing (v2.6+ replaces SCH-11 by TQ1): the appointment's start and end.
        for field, key in ((7, "start"), (8, "end")):
            when = dt.instant(seg.get(field), ctx.default_tz)
            if when:
                st.appointment[key] = when
        return
    target = st.medication if st.medication is not None else st.order
    if target is None:
        if st.orc is not None:
            st.pending_timing.append(seg)
        return
    _apply_timing(ctx, seg, target)


def _apply_pending_timing(ctx: Context, st: State, target: Json) -> None:
    for seg in st.pending_timing:
        _apply_timing(ctx, seg, target)
    st.pending_timing = []


def _apply_timing(ctx: Context, seg: Segment, target: Json) -> None:
    timing = _tq1_timing(ctx, seg)
    quantity = dt.cq_quantity(seg.value(2), ctx) if seg.raw(2) else None
    text = seg.get(11)
    if target.get("resourceType") == "MedicationRequest":
        dosage = target.setdefault("dosageInstruction", [{}])[0]
        if timing:
            dosage.setdefault("timing", timing)
        if quantity:
            rates = dosage.setdefault("doseAndRate", [{}])
            if not any(k.startswith("dose") for k in rates[0]):
                rates[0]["doseQuantity"] = quantity  # dose[x] is a choice: an RXO dose range stays
        if seg.get(10):
            dosage.setdefault("additionalInstruction", []).append({"text": seg.get(10)})
        if text:
            dosage.setdefault("text", text)
    else:
        if timing and "occurrenceTiming" not in target and "occurrencePeriod" not in target:
            when = target.pop("occurrenceDateTime", None)
            if when:
                timing["event"] = [when]  # OBR-6 (requested time) kept as the timing's event
            target["occurrenceTiming"] = timing
        if quantity:
            target.setdefault("quantityQuantity", quantity)
        if seg.get(10) and target.get("resourceType") == "ServiceRequest":
            # TQ1-10 condition text (the IG leaves it to an unnamed extension): the
            # precondition of the service, ServiceRequest.asNeeded[x].
            target.setdefault("asNeededCodeableConcept", {"text": seg.get(10)})
        if text:
            target.setdefault("note", []).append({"text": text})
    prio = dt.lookup("ExtendedPriorityCodes", seg.get(9))
    if prio and target.get("resourceType") in ("ServiceRequest", "MedicationRequest"):
        target.setdefault("priority", prio[0])


def h_rxa(ctx: Context, seg: Segment, st: State) -> None:
    """RXA (+ its ORC) -> Immunization."""
    if ctx.patient_ref is None:
        return
    res = fm.apply(fm.RXA, seg, _new("Immunization"), ctx)
    if st.orc is not None:
        fm.apply(fm.ORC_IMM, st.orc, res, ctx)
        st.order_used = True
    if seg.get(21).upper() == "D":
        res["status"] = "entered-in-error"
    res.setdefault("status", "completed")
    if "vaccineCode" not in res:
        res["vaccineCode"] = {"text": "unknown"}
    if "occurrenceDateTime" not in res:
        res["occurrenceString"] = "unknown"
    location = ctx.entries.get(_rid_in(res["location"]["reference"])) if "location" in res else None
    if location is not None and seg.get(28):
        # IG RXA-28: the administration location's address.
        address = dt.xad_address(seg.value(28), ctx)
        if address:
            location.resource.setdefault("address", address)
    dose = dt.number(seg.get(6))
    if dose is not None and dose != 999:
        res["doseQuantity"] = {"value": dose, **dt.cwe_quantity_unit(seg.value(7), ctx)}
    if seg.raw(9):
        _administration_notes(ctx, seg, res)
    res["patient"] = ctx.patient_ref
    if st.encounter_ref is not None:
        res["encounter"] = st.encounter_ref
    ident = _first_ident(res)
    if ident:
        ref = ctx.add(res, ident=ident)
    else:
        ref = ctx.add_shared(
            res, resource_id("Immunization", ctx.patient_ref["reference"], seg.get(5), seg.get(3))
        )
    st.immunization = st.last = _stored(ctx, ref, res)
    st.focus.append(ref)


#: LOINC codes of VXU order-group OBX that say something the Immunization itself holds (IG
#: VXU_V04 ORDER.OBSERVATION: "funding source, patient eligibility... may map to elements within
#: the Immunization"); the Observation is kept as well.
_FUNDING_SOURCE = "30963-3"
_PROGRAM_ELIGIBILITY = "64994-7"


def _immunization_detail(ctx: Context, seg: Segment, imm: Json) -> None:
    """OBX 30963-3 (vaccine funding source) -> Immunization.fundingSource; OBX 64994-7 (funding
    program eligibility) -> Immunization.programEligibility."""
    code = seg.get(3)
    if code not in (_FUNDING_SOURCE, _PROGRAM_ELIGIBILITY) or seg.get(3, 3).upper() not in ("LN", ""):
        return
    value = dt.cwe_codeable_concept(seg.value(5), ctx) if seg.get(5) else None
    if value is None:
        return
    if code == _FUNDING_SOURCE:
        imm.setdefault("fundingSource", value)
    elif value not in imm.setdefault("programEligibility", []):
        imm["programEligibility"].append(value)


def _administration_notes(ctx: Context, seg: Segment, res: Json) -> None:
    """RXA-9 (no IG row): an information-source code (CDC NIP001: 00 new record from the
    administering provider, 01-08 historical) says primarySource and, when not 00, the
    reportOrigin; other notes are Immunization notes."""
    for rep in seg.reps(9):
        if rep.get(3).upper() == "NIP001" and rep.get(1):
            res.setdefault("primarySource", rep.get(1) == "00")
            if rep.get(1) != "00" and "reportOrigin" not in res:
                origin = dt.cwe_codeable_concept(rep, ctx)
                if origin:
                    res["reportOrigin"] = origin
        elif rep.get(2) or rep.get(1):
            res.setdefault("note", []).append({"text": rep.get(2) or rep.get(1)})


def h_rxr(ctx: Context, seg: Segment, st: State) -> None:
    """RXR -> route and site of the immunization or medication order."""
    last = st.last
    if last is None:
        return
    if last.get("resourceType") == "Immunization":
        fm.apply(fm.RXR, seg, last, ctx)
    elif last.get("resourceType") in ("MedicationRequest", "MedicationDispense"):
        route = dt.cwe_codeable_concept(seg.value(1), ctx, "RouteOfAdministration")
        site = dt.cwe_codeable_concept(seg.value(2), ctx, "BodyParts")
        dosage = last.setdefault("dosageInstruction", [{}])[0]
        if route:
            dosage.setdefault("route", route)
        if site:
            dosage.setdefault("site", site)
        method = dt.cwe_codeable_concept(seg.value(4), ctx, "AdministrationMethod") if seg.get(4) else None
        if method:
            dosage.setdefault("method", method)
        if seg.get(5):
            instruction = dt.cwe_codeable_concept(seg.value(5), ctx, "RoutingInstruction")
            if instruction:
                dosage.setdefault("additionalInstruction", []).append(instruction)


def h_rx_order(ctx: Context, seg: Segment, st: State) -> None:
    """RXO/RXE (+ ORC) -> MedicationRequest (RXE give amount/units and dispense units in code).

    RXO is the placer's original order (IG RXO: intent original-order); RXE is the pharmacy's
    encoding of it, a filler-order of its own based on the group's RXO request, so the dosage,
    timing and route each sends (with the TQ1/RXR after it) stay apart."""
    if ctx.patient_ref is None:
        return
    rows = fm.RXO if seg.name == "RXO" else fm.RXE
    original = _original_order(st) if seg.name == "RXE" else None
    res = fm.apply(rows, seg, _new("MedicationRequest"), ctx)
    if seg.name == "RXE":
        _rxe_amounts(ctx, seg, res)
    else:
        _rxo_details(ctx, seg, res)
    if st.orc is not None:
        fm.apply(fm.ORC_MED, st.orc, res, ctx)
        _requester_facility(ctx, st.orc, res)
        if st.orc.raw(7):
            _medication_tq(ctx, st.orc, res)
        st.order_used = True
    pharmacy = (33, 36) if seg.name == "RXO" else (41, 45)
    if "dispenseRequest" in res and "performer" in res["dispenseRequest"]:
        _add_address_and_phones(ctx, seg, res["dispenseRequest"]["performer"], *pharmacy)
    res.setdefault("status", "unknown")
    res["intent"] = "original-order" if seg.name == "RXO" else "filler-order"  # IG RXO: original-order
    if "medicationCodeableConcept" not in res and "medicationReference" not in res:
        res["medicationCodeableConcept"] = {"text": "unknown"}
    res["subject"] = ctx.patient_ref
    if st.encounter_ref is not None:
        res["encounter"] = st.encounter_ref
    if original is not None:
        res["basedOn"] = [dict(original)]
        # The order numbers are the original's: the prescription number (RXE-15) names this one.
        number = seg.get(15)
        ident = (
            next((dict(i) for i in res["identifier"] if i.get("value") == number), None) if number else None
        )
    else:
        ident = _first_ident(res)
    ref = ctx.add(res, ident=ident, key=(seg.name, str(seg.index)))
    stored = _stored(ctx, ref, res)
    if stored is not res:
        # The same order seen before (an RXE after its RXO in one ORC group): complete it, so the
        # pharmacy's encoding and the RXR/TQ1 segments after it are not lost.
        _merge_request(stored, res)
        res = stored
    if seg.name == "RXE":
        _rxe_form(ctx, seg, res)
    st.medication, st.medication_ref = res, ref
    _apply_pending_timing(ctx, st, res)
    if st.orc is not None:
        _order_provenance(ctx, st.orc, ref)
    st.last = res
    st.focus.append(ref)


def _add_address_and_phones(ctx: Context, seg: Segment, ref: Json | None, address: int, phone: int) -> None:
    """Field ``address`` (XAD, first repetition) and every repetition of field ``phone`` (XTN)
    added to the resource ``ref`` points to in this bundle, each once: the ordering facility
    (ORC-22/23), the dispensing pharmacy (RXO-33/36, RXE-41/45), schedule contacts (SCH)."""
    entry = ctx.entries.get(_rid_in(ref["reference"])) if ref else None
    if entry is None:
        return
    target = entry.resource
    found = dt.xad_address(seg.value(address), ctx) if address and seg.get(address) else None
    if found and found not in target.setdefault("address", []):
        target["address"].append(found)
    for t in (dt.xtn_contact_point(r, ctx) for r in seg.reps(phone)):
        if t and t not in target.setdefault("telecom", []):
            target["telecom"].append(t)


def _original_order(st: State) -> Json | None:
    """A reference to the order group's RXO request (the original order an RXE encodes)."""
    if st.medication is None or st.medication.get("intent") != "original-order":
        return None
    return st.medication_ref


_LISTED = frozenset({"identifier", "note", "reasonCode", "basedOn", "supportingInformation"})


def _merge_request(target: Json, extra: Json) -> None:
    """Complete the MedicationRequest ``target`` with what ``extra`` adds: new list items,
    the dose/rate entries and dosage details it lacks, dispense details it lacks."""
    for key, value in extra.items():
        have = target.get(key)
        if have is None or have is value:
            continue
        if key in _LISTED:
            have.extend(v for v in value if v not in have)
        elif key == "dosageInstruction":
            dosage, more = have[0], value[0]
            for dkey, dvalue in more.items():
                if dkey in ("doseAndRate", "additionalInstruction") and dkey in dosage:
                    dosage[dkey].extend(v for v in dvalue if v not in dosage[dkey])
                else:
                    dosage.setdefault(dkey, dvalue)
        elif key == "dispenseRequest":
            for dkey, dvalue in value.items():
                have.setdefault(dkey, dvalue)


_DOSE_RATE_TYPE = "http://terminology.hl7.org/CodeSystem/dose-rate-type"


def _rxo_details(ctx: Context, seg: Segment, res: Json) -> None:
    """IG ``RXO[MedicationRequest]``: the requested give amount range (RXO-2/3, units RXO-4) as
    the ordered dose, RXO-12 dispense units; RXO-1 (code) and RXO-5 (form) as a Medication."""
    low, high = dt.number(seg.get(2)), dt.number(seg.get(3))
    if low is not None or high is not None:
        unit = dt.cwe_quantity_unit(seg.value(4), ctx) if seg.get(4) else {}
        dose_range: Json = {}
        if low is not None:
            dose_range["low"] = {"value": low, **unit}
        if high is not None:
            dose_range["high"] = {"value": high, **unit}
        dosage = res.setdefault("dosageInstruction", [{}])[0]
        dosage.setdefault("doseAndRate", []).append(
            {"type": {"coding": [dt.coding("ordered", _DOSE_RATE_TYPE, "Ordered")]}, "doseRange": dose_range}
        )
    quantity = res.get("dispenseRequest", {}).get("quantity")
    if quantity is not None and seg.get(12):
        quantity.update(dt.cwe_quantity_unit(seg.value(12), ctx))
    if seg.raw(7):
        # RXO-7 (provider's administration instructions, no IG row): the sig, in words.
        texts = [t for t in (r.get(2) or r.get(1) for r in seg.reps(7)) if t]
        if texts:
            res.setdefault("dosageInstruction", [{}])[0]["patientInstruction"] = "\n".join(texts)
    interval = dt.number(seg.get(28))
    if interval is not None and interval >= 0:
        # RXO-28 dispensing interval (no IG row), in days.
        res.setdefault("dispenseRequest", {})["dispenseInterval"] = {
            "value": interval,
            "unit": "days",
            "system": _UCUM,
            "code": "d",
        }
    rate = dt.number(seg.get(21))
    if rate is not None:
        # RXO-21/22 (requested give rate and units), as RXE-23/24 give the rate.
        dosage = res.setdefault("dosageInstruction", [{}])[0]
        dosage.setdefault("doseAndRate", [{}])[-1]["rateQuantity"] = {
            "value": rate,
            **dt.cwe_quantity_unit(seg.value(22), ctx),
        }
    if seg.get(23):
        _max_daily_dose(ctx, seg.value(23), res)
    code = res.pop("medicationCodeableConcept", None)
    if code is not None:
        medication: Json = {"resourceType": "Medication", "code": code}
        form = dt.cwe_codeable_concept(seg.value(5), ctx, "RequestedDosageForm") if seg.get(5) else None
        if form:
            medication["form"] = form
        strength = _strength(ctx, seg, 18, 25)
        if strength is not None:
            # IG RXO-18/19 and RXO-25/26: the requested strength of the drug itself (the
            # ingredient names the drug's code: an ingredient needs an item).
            medication["ingredient"] = [{"itemCodeableConcept": code, "strength": strength}]
        res["medicationReference"] = ctx.add(medication, key=("RXO", str(seg.index), "Medication"))


def _strength(ctx: Context, seg: Segment, amount_at: int, volume_at: int) -> Json | None:
    """A strength Ratio: the amount (NM at ``amount_at``, its units in the next field) per the
    volume (NM at ``volume_at``, units next; 1 when not given); None without an amount."""
    amount = dt.number(seg.get(amount_at))
    if amount is None:
        return None
    volume = dt.number(seg.get(volume_at))
    denominator: Json = {"value": 1 if volume is None else volume}
    if volume is not None:
        denominator.update(dt.cwe_quantity_unit(seg.value(volume_at + 1), ctx))
    return {
        "numerator": {"value": amount, **dt.cwe_quantity_unit(seg.value(amount_at + 1), ctx)},
        "denominator": denominator,
    }


def _rxe_amounts(ctx: Context, seg: Segment, res: Json) -> None:
    """RXE-3/5 give amount and units -> doseQuantity; RXE-11 dispense units; RXE-23/24 rate;
    RXE-7 (give administration instructions, one CWE per instruction) the dosage's
    additionalInstruction (one Dosage, not a Dosage per instruction)."""
    if seg.raw(7):
        instructions = [c for c in (dt.cwe_codeable_concept(r, ctx) for r in seg.reps(7)) if c]
        if instructions:
            res.setdefault("dosageInstruction", [{}])[0].setdefault("additionalInstruction", []).extend(
                instructions
            )
    dose = dt.number(seg.get(3))
    if dose is not None:
        q: Json = {"value": dose, **dt.cwe_quantity_unit(seg.value(5), ctx)}
        dosage = res.setdefault("dosageInstruction", [{}])[0]
        dosage.setdefault("doseAndRate", [{}])[0]["doseQuantity"] = q
    rate = dt.number(seg.get(23))
    if rate is not None:
        dosage = res.setdefault("dosageInstruction", [{}])[0]
        dosage.setdefault("doseAndRate", [{}])[0]["rateQuantity"] = {
            "value": rate,
            **dt.cwe_quantity_unit(seg.value(24), ctx),
        }
    quantity = res.get("dispenseRequest", {}).get("quantity")
    if quantity is not None:
        quantity.update(dt.cwe_quantity_unit(seg.value(11), ctx))
    initial = dt.number(seg.get(39))
    if initial is not None and initial >= 0:
        # RXE-39 initial dispense amount (no IG row), in the dispense units (RXE-11).
        fill = {"value": initial, **dt.cwe_quantity_unit(seg.value(11), ctx)}
        res.setdefault("dispenseRequest", {})["initialFill"] = {"quantity": fill}
    if seg.get(19):
        _max_daily_dose(ctx, seg.value(19), res)


def _rxe_form(ctx: Context, seg: Segment, res: Json) -> None:
    """RXE-6 (give dosage form) needs a Medication, as RXO-5 does (IG RXO[MedicationRequest]);
    made once the request is final, so an RXE merged into its RXO's request adds none."""
    if seg.get(6) and "medicationCodeableConcept" in res:
        form = dt.cwe_codeable_concept(seg.value(6), ctx)
        if form:
            code = res.pop("medicationCodeableConcept")
            medication: Json = {"resourceType": "Medication", "code": code, "form": form}
            res["medicationReference"] = ctx.add(medication, key=("RXE", str(seg.index), "Medication"))


_UCUM = "http://unitsofmeasure.org"
_PER_DAY: Json = {"value": 1, "unit": "d", "system": _UCUM, "code": "d"}


def _max_daily_dose(ctx: Context, v: Value, res: Json) -> None:
    """Total daily dose (RXO-23, RXE-19, RXD-12; CQ) -> dosage maxDosePerPeriod per 1 day
    (IG RXO[MedicationRequest])."""
    numerator = dt.cq_quantity(v, ctx)
    if numerator is not None:
        dosage = res.setdefault("dosageInstruction", [{}])[0]
        dosage.setdefault("maxDosePerPeriod", {"numerator": numerator, "denominator": dict(_PER_DAY)})


def _order_medication(ctx: Context, st: State) -> Json | None:
    """The Medication of the current order group's request, made from its code when the
    request names the drug by code only (RXC components need a Medication to belong to)."""
    if st.medication_ref is None:
        return None
    entry = ctx.entries.get(_rid_in(st.medication_ref["reference"]))
    if entry is None:
        return None
    request = entry.resource
    ref = request.get("medicationReference")
    if ref is None:
        code = request.pop("medicationCodeableConcept", None)
        if code is None:
            return None
        medication: Json = {"resourceType": "Medication", "code": code}
        ref = request["medicationReference"] = ctx.add(medication, key=("Medication", entry.rid))
    found = ctx.entries.get(_rid_in(ref["reference"]))
    return found.resource if found is not None else None


def h_rxc(ctx: Context, seg: Segment, st: State) -> None:
    """RXC (no IG table) -> an ingredient of the order's Medication: the component (RXC-2) as a
    Medication of its own with its amount (RXC-3/4), at the strength RXC-5/6 per RXC-8/9."""
    if not seg.get(2):
        return
    medication = _order_medication(ctx, st)
    code = dt.cwe_codeable_concept(seg.value(2), ctx)
    if medication is None or not code:
        return
    component: Json = {"resourceType": "Medication", "code": code}
    amount = dt.number(seg.get(3))
    if amount is not None:
        component["amount"] = {
            "numerator": {"value": amount, **dt.cwe_quantity_unit(seg.value(4), ctx)},
            "denominator": {"value": 1},
        }
    # A compound's components replace the drug-as-its-own-ingredient that RXO-18/19 made: the
    # requested strength of a mixture names no one ingredient.
    own = medication.get("code")
    medication["ingredient"] = [
        i for i in medication.get("ingredient", []) if i.get("itemCodeableConcept") != own
    ]
    ingredient: Json = {"itemReference": ctx.add(component, key=("RXC", str(seg.index)))}
    strength = _strength(ctx, seg, 5, 8)
    if strength is not None:
        ingredient["strength"] = strength
    medication.setdefault("ingredient", []).append(ingredient)


def h_rxd(ctx: Context, seg: Segment, st: State) -> None:
    """RXD -> MedicationDispense (authorised by the group's MedicationRequest)."""
    if ctx.patient_ref is None:
        return
    res = fm.apply(fm.RXD, seg, _new("MedicationDispense"), ctx)
    res["status"] = "completed"
    if "medicationCodeableConcept" not in res:
        res["medicationCodeableConcept"] = {"text": "unknown"}
    res["subject"] = ctx.patient_ref
    quantity = res.get("quantity")
    if quantity is not None and seg.get(5):
        quantity.update(dt.cwe_quantity_unit(seg.value(5), ctx))
    if seg.get(12):
        _max_daily_dose(ctx, seg.value(12), res)
    if seg.get(6) or seg.get(25):
        _dispensed_medication(ctx, seg, res)
    # RXD-7 is the prescription's number: the authorizing MedicationRequest's identifier.
    prescription: Json = {"identifier": {"value": seg.get(7)}} if seg.get(7) else {}
    if st.medication_ref is not None:
        prescription = {**st.medication_ref, **prescription}
    if prescription:
        res["authorizingPrescription"] = [{**prescription, "type": "MedicationRequest"}]
    st.last = _stored(ctx, ctx.add(res, key=("RXD", str(seg.index))), res)


def _dispensed_medication(ctx: Context, seg: Segment, res: Json) -> None:
    """RXD (no IG table): the drug dispensed as a Medication when the RXD says more of it than
    its code, its actual dosage form (RXD-6) or supplementary codes (RXD-25, more codings)."""
    code = res.get("medicationCodeableConcept")
    if code is None or "coding" not in code:
        return
    codings = list(code["coding"])
    for rep in seg.reps(25) if seg.get(25) else ():
        for extra in (dt.cwe_codeable_concept(rep, ctx) or {}).get("coding", []):
            if extra not in codings:
                codings.append(extra)
    medication: Json = {"resourceType": "Medication", "code": {**code, "coding": codings}}
    form = dt.cwe_codeable_concept(seg.value(6), ctx) if seg.get(6) else None
    if form:
        medication["form"] = form
    del res["medicationCodeableConcept"]
    res["medicationReference"] = ctx.add(medication, key=("RXD", str(seg.index), "Medication"))


def h_txa(ctx: Context, seg: Segment, st: State) -> None:
    """TXA -> DocumentReference (content from the following OBX segments)."""
    res = fm.apply(fm.TXA, seg, _new("DocumentReference"), ctx)
    # IG TXA-19: AV (or none) is current; the IG leaves CA/OB/UN to an extension, and status is
    # required: obsolete is superseded, canceled entered-in-error, unavailable still current.
    res["status"] = _DOC_AVAILABILITY.get(seg.get(19).upper(), "current")
    doc_status = _DOC_COMPLETION.get(seg.get(17).upper())
    if doc_status:
        res["docStatus"] = doc_status  # IG TXA-17, in the composition-status codes it is bound to
    _subject(ctx, res)
    if st.encounter_ref is not None:
        res["context"] = {"encounter": [st.encounter_ref]}
    activity = dt.dtm(seg.get(4), ctx.default_tz)
    if activity:
        # TXA-4 (no IG row): when the documented activity took place.
        res.setdefault("context", {})["period"] = {"start": activity}
    if seg.get(13):
        # TXA-13 (no IG row): the parent document, which this one appends to or replaces.
        parent = dt.ei_identifier(seg.value(13), ctx)
        if parent:
            code = "replaces" if st.event in ("T09", "T10") else "appends"
            res["relatesTo"] = [{"code": code, "target": {"type": "DocumentReference", "identifier": parent}}]
    master = res.get("masterIdentifier")
    ref = ctx.add(res, ident=master, key=("TXA", str(seg.index)))
    st.document = st.last = res = _stored(ctx, ref, res)
    st.documents.append((res, seg))
    st.focus.append(ref)


def _complete_appointment(st: State) -> None:
    """The required elements of the Appointment, once its segments are read: the status (SCH-25,
    else what a cancel/delete/no-show event implies, else the first AIS-10, else booked) and a
    participant.
    A schedule naming neither a patient nor a resource has none to give, so its one
    participant says so (app-1: a type or an actor)."""
    appt = st.appointment
    if appt is None:
        return
    by_event = _APPOINTMENT_STATUS_BY_EVENT.get(st.event)
    if by_event and not st.sch_status:
        appt["status"] = by_event  # a cancel, delete or no-show event outranks AIS-10
    else:
        appt.setdefault("status", "booked")
    if not appt.get("participant"):
        appt["participant"] = [{"type": [{"text": "unknown"}], "status": "needs-action"}]


def h_sch(ctx: Context, seg: Segment, st: State) -> None:
    """SCH -> Appointment (status by SCH-25, else by a cancel/delete/no-show trigger event,
    else by the first AIS-10, else booked: see :func:`_complete_appointment`)."""
    _complete_appointment(st)  # a second SCH: the first Appointment is done
    res = fm.apply(fm.SCH, seg, _new("Appointment"), ctx)
    st.sch_status = "status" in res
    timing = seg.value(11)
    start = dt.instant(timing.component(4).get(1), ctx.default_tz)
    end = dt.instant(timing.component(5).get(1), ctx.default_tz)
    if start:
        res["start"] = start
    if end:
        res["end"] = end
    if seg.get(9) and seg.get(10):
        # IG SCH-9 is minutesDuration; SCH-10 gives its units (seconds, hours...).
        minutes = _minutes(seg.get(9), seg.get(10))
        if minutes is not None and 1 <= minutes <= _MAX_POSITIVE_INT:
            res["minutesDuration"] = round(minutes)
        else:
            res.pop("minutesDuration", None)
    for field in (26, 27):
        # IG SCH-26/27: the placer/filler order the appointment fulfils.
        for order_ident in dt.eip_identifiers(seg.value(field), ctx) if seg.get(field) else ():
            res.setdefault("basedOn", []).append({"type": "ServiceRequest", "identifier": order_ident})
    for person, phone, address in ((12, 13, 14), (16, 17, 18), (20, 21, 0)):
        if seg.get(person) and (seg.raw(phone) or (address and seg.get(address))):
            _contact_details(ctx, seg, person, phone, address)
    ident = _first_ident(res)
    ref = ctx.add(res, ident=ident, key=("SCH", str(seg.index)))
    _add_schedule_orders(ctx, st)
    st.appointment = st.last = _stored(ctx, ref, res)
    st.focus.append(ref)
    if seg.get(26) or seg.get(27):
        st.schedule_order = (seg, _schedule_order(ctx, seg))


def _contact_details(ctx: Context, seg: Segment, person: int, phone: int, address: int) -> None:
    """SCH-13/14, 17/18, 21 (no IG rows): the phone and address of the placer contact (SCH-12),
    filler contact (SCH-16) and enterer (SCH-20), on that Practitioner."""
    _add_address_and_phones(ctx, seg, ctx.practitioner_from_xcn(seg.value(person)), address, phone)


#: Table 0278 filler status -> ServiceRequest.status (the IG's SCH[ServiceRequest] row names the
#: appointment-status map, whose codes a ServiceRequest cannot carry).
_SCHEDULE_ORDER_STATUS = {
    "PENDING": "active",
    "WAITLIST": "active",
    "BOOKED": "active",
    "STARTED": "active",
    "OVERBOOK": "active",
    "COMPLETE": "completed",
    "CANCELLED": "revoked",
    "DISCONTINUED": "revoked",
    "NOSHOW": "revoked",
    "DELETED": "entered-in-error",
    "BLOCKED": "on-hold",
}


def _schedule_order(ctx: Context, seg: Segment) -> Json:
    """IG ``SCH[ServiceRequest]``: the order the appointment fulfils, identified by its placer and
    filler order numbers (SCH-26/27), status by SCH-25 (else active), intent order."""
    res = fm.apply(fm.SCH_SR, seg, _new("ServiceRequest"), ctx)
    res["status"] = _SCHEDULE_ORDER_STATUS.get(
        seg.get(25).upper(), "active" if not seg.get(25) else "unknown"
    )
    res["intent"] = "order"
    return res


def _schedule_service(ctx: Context, seg: Segment, st: State) -> None:
    """IG ``AIS[ServiceRequest]``: a ServiceRequest per AIS holding the SCH's order data, the
    service (AIS-3, also its code as OBR-4 is) and supplemental services (AIS-11/12) as
    identifiers, and the service period (AIS-4, else the appointment start plus AIS-5/6; end
    plus the AIS-7/8 duration)."""
    if st.schedule_order is None or st.appointment is None:
        return
    base = st.schedule_order[1]
    res = dict(base)
    if "identifier" in base:
        res["identifier"] = list(base["identifier"])  # the AIS adds its own; the SCH's stay as they are
    fm.apply(fm.AIS_SR, seg, res, ctx)
    period = _resource_period(seg, 4, st.appointment, ctx)
    if period:
        res["occurrencePeriod"] = period
    st.schedule_services.append((seg, res))


def _add_schedule_orders(ctx: Context, st: State) -> None:
    """Add the SCH's ServiceRequests (one per AIS, else the SCH's own) and make them the
    appointment's basedOn (once the patient, their required subject, is known)."""
    if st.schedule_order is None:
        return
    sch, base = st.schedule_order
    requests = st.schedule_services or [(sch, base)]
    st.schedule_order, st.schedule_services = None, []
    appointment = st.appointment
    refs: list[Json] = []
    for seg, res in requests:
        key = (seg.name, str(seg.index), "ServiceRequest")
        if ctx.patient_ref is None:
            _with_patient(ctx, st, res, "subject", key)
            continue
        res["subject"] = ctx.patient_ref
        if st.encounter_ref is not None:
            res["encounter"] = st.encounter_ref
        # The order numbers identify the order; AIS services sharing them get ids of their own.
        first = (res.get("identifier") or [None])[0]
        ident = dict(first) if first and len(requests) == 1 else None
        ref: Json = {**ctx.add(res, ident=ident, key=key), "type": "ServiceRequest"}
        if first:
            ref["identifier"] = first  # the order number, as SCH-26/27 name the order
        refs.append(ref)
    if appointment is not None and refs:
        appointment["basedOn"] = refs


def _appointment_patient(ctx: Context, st: State) -> None:
    appt = st.appointment
    if appt is None or ctx.patient_ref is None:
        return
    parts = appt.setdefault("participant", [])
    if not any(p.get("actor") == ctx.patient_ref for p in parts):
        parts.insert(0, {"actor": ctx.patient_ref, "status": "accepted"})


def h_ais(ctx: Context, seg: Segment, st: State) -> None:
    """AIS/AIG/AIL/AIP -> Appointment service type and participants."""
    if st.appointment is None:
        return
    # IG SIU_S12: the NTEs of a SERVICE group (after its AIS) are appointment comments. Those
    # after AIG/AIL/AIP have no IG target; rather than drop them (or put them on the resource
    # before the AIx) they are kept whole as the appointment's R5 notes, outside its comment.
    st.last = st.appointment
    st.resource_notes = None if seg.name == "AIS" else st.appointment
    rows = {"AIS": fm.AIS, "AIG": fm.AIG, "AIL": fm.AIL, "AIP": fm.AIP}[seg.name]
    parts = st.appointment.get("participant") or []
    before = len(parts)
    fm.apply(rows, seg, st.appointment, ctx)
    start_pos = {"AIS": 4, "AIG": 8, "AIL": 6, "AIP": 6}[seg.name]
    parts = st.appointment.get("participant") or []
    if len(parts) > before and seg.name != "AIS":
        # IG AIG-8..12 / AIL-6..10 / AIP-6..10: the resource's own period (start, or the
        # appointment start plus the offset; end = start plus the duration).
        period = _resource_period(seg, start_pos, st.appointment, ctx)
        if period:
            parts[-1]["period"] = period
        status = _PARTICIPANT_STATUS.get(seg.get(start_pos + 6).upper())
        if status:
            # IG AIP-12 (AIG-14, AIL-12 alike): the resource's filler status (table 0278).
            parts[-1]["status"] = status
        if seg.name == "AIL" and seg.get(4) and "actor" in parts[-1]:
            # AIL-4 (location type, no IG row): the Location's type.
            _location_type(ctx, seg, parts[-1]["actor"])
        if seg.name == "AIG" and seg.get(3) and "actor" not in parts[-1]:
            # IG AIG-3: the general resource, as a Location identified by it.
            resource = _aig_resource(ctx, seg)
            if resource is not None:
                parts[-1]["actor"] = resource
    if seg.name == "AIP" and seg.get(4):
        # IG AIP-4: the role of the AIP-3 person, as that participant's type.
        person = ctx.practitioner_from_xcn(seg.value(3)) if seg.get(3) else None
        role = dt.cwe_codeable_concept(seg.value(4), ctx)
        for part in st.appointment.get("participant", []):
            if person is not None and role and part.get("actor") == person and "type" not in part:
                part["type"] = [role]
    start = dt.instant(seg.get(start_pos), ctx.default_tz)
    if start and "start" not in st.appointment:
        st.appointment["start"] = start
    if seg.name == "AIS" and st.schedule_order is not None:
        _schedule_service(ctx, seg, st)


def _location_type(ctx: Context, seg: Segment, actor: Json) -> None:
    """AIL-4 (location resource type, e.g. table 0305 C clinic) as the actor Location's type."""
    found = ctx.entries.get(_rid_in(actor.get("reference", "")))
    kind = dt.cwe_codeable_concept(seg.value(4), ctx)
    if found is not None and found.rtype == "Location" and kind:
        types = found.resource.setdefault("type", [])
        if kind not in types:
            types.append(kind)


#: Table 0278 filler status -> Appointment.participant.status (no-show says nothing of the answer).
_PARTICIPANT_STATUS = {
    "BOOKED": "accepted",
    "STARTED": "accepted",
    "COMPLETE": "accepted",
    "OVERBOOK": "accepted",
    "PENDING": "tentative",
    "WAITLIST": "tentative",
    "CANCELLED": "declined",
    "DISCONTINUED": "declined",
    "DELETED": "declined",
    "BLOCKED": "declined",
}


def _aig_resource(ctx: Context, seg: Segment) -> Json | None:
    """AIG-3 (resource id, CWE) -> a Location with that identifier and its text as the name
    when AIG-4 (resource type) says it is a location (IG AIG-3); else the general resource is
    equipment, a Device with that identifier (and CWE.4, the alternate id) and its text as the
    device name."""
    ident = dt.DATATYPES["CWE[Identifier]"](seg.value(3), ctx, None)
    if not ident:
        return None
    kind = f"{seg.get(4)} {seg.get(4, 2)}".lower()
    if "loc" in kind or "room" in kind:
        location: Json = {"resourceType": "Location", "identifier": [ident]}
        if seg.get(3, 2):
            location["name"] = seg.get(3, 2)
        return ctx.add(location, ident=dict(ident))
    device: Json = {"resourceType": "Device", "identifier": [ident]}
    if seg.get(3, 4):
        device["identifier"].append({"value": seg.get(3, 4)})
    if seg.get(3, 2):
        device["deviceName"] = [{"name": seg.get(3, 2), "type": "user-friendly-name"}]
    return ctx.add(device, ident=dict(ident))


_MAX_POSITIVE_INT = 2**31 - 1
#: Time units (ISO+ / ANSI codes of HL7 table 9999) -> minutes.
_MINUTES = {
    "s": 1 / 60,
    "sec": 1 / 60,
    "min": 1,
    "m": 1,
    "h": 60,
    "hr": 60,
    "hour": 60,
    "d": 1440,
    "day": 1440,
    "wk": 10080,
    "week": 10080,
}


def _minutes(amount: str, units: str) -> float | None:
    """``amount`` of ``units`` (default minutes) in minutes, or None if either is not understood."""
    value = dt.number(amount)
    key = units.lower()
    factor = _MINUTES.get(key) or _MINUTES.get(key.rstrip("s")) if key else 1
    if value is None or factor is None:
        return None
    return value * factor


def _shifted(instant: str, minutes: float) -> str | None:
    """The FHIR instant ``instant`` moved by ``minutes`` (None if it has no time of day)."""
    if "T" not in instant:
        return None
    try:
        when = datetime.fromisoformat(instant.replace("Z", "+00:00"))
        return (when + timedelta(minutes=minutes)).isoformat()
    except (ValueError, OverflowError):  # a sender's absurd offset or duration: no period end
        return None


def _resource_period(seg: Segment, pos: int, appointment: Json, ctx: Context) -> Json | None:
    """AIx start (``pos``), start offset (pos+1, units pos+2), duration (pos+3, units pos+4)."""
    start = dt.instant(seg.get(pos), ctx.default_tz)
    if not start and seg.get(pos + 1) and appointment.get("start"):
        offset = _minutes(seg.get(pos + 1), seg.get(pos + 2))
        start = _shifted(appointment["start"], offset) if offset is not None else None
    if not start:
        return None
    period: Json = {"start": start}
    if seg.get(pos + 3):
        duration = _minutes(seg.get(pos + 3), seg.get(pos + 4))
        end = _shifted(start, duration) if duration is not None else None
        if end:
            period["end"] = end
    return period


_REFERRAL_STATUS = {"A": "active", "P": "on-hold", "R": "revoked", "E": "revoked", "C": "revoked"}
_PATIENT_REFERRAL: Json = {
    "coding": [{"system": "http://snomed.info/sct", "code": "3457005", "display": "Patient referral"}]
}


def _with_patient(ctx: Context, st: State, res: Json, key: str, id_key: tuple[str, ...]) -> None:
    """Add ``res`` with the patient as ``key`` now, or once the walk has met the PID."""
    if ctx.patient_ref is None:
        st.awaiting_patient.append((res, key, id_key))
        return
    res[key] = ctx.patient_ref
    ident = (res.get("identifier") or [None])[0]
    ctx.add(res, ident=ident, key=id_key)


def _add_awaiting_patient(ctx: Context, st: State) -> None:
    """Add the resources that waited for a later PID (a message without one drops them: their
    patient element is required)."""
    _add_schedule_orders(ctx, st)
    if ctx.patient_ref is None:
        return
    for res, key, id_key in st.awaiting_patient:
        if res.get("resourceType") == "ServiceRequest" and ctx.encounter_ref is not None:
            res.setdefault("encounter", ctx.encounter_ref)
        _with_patient(ctx, st, res, key, id_key)


def h_rf1(ctx: Context, seg: Segment, st: State) -> None:
    """RF1 (no IG table) -> the referral as a ServiceRequest: status RF1-1 (table 0283),
    priority RF1-2, type RF1-3 as a category beside "patient referral", category RF1-5 as the
    location code, RF1-6/11 identifiers, RF1-7/8 effective/expiration as the occurrence period,
    RF1-9 processed as authoredOn, RF1-10 reason (RF1-14 description its text), RF1-19/20
    authorized provider/professional as performers, RF1-24 comment as a note."""
    res = fm.apply(fm.RF1, seg, _new("ServiceRequest"), ctx)
    res["status"] = _REFERRAL_STATUS.get(seg.get(1).upper(), "unknown")
    if st.event == "I14":
        res["status"] = "revoked"  # REF^I14 cancels the referral
    res["intent"] = "order"
    res.setdefault("category", []).insert(0, _PATIENT_REFERRAL)
    if seg.get(14):
        # RF1-14 referral description: the text of the reason (RF1-10), else a reason of its own.
        reasons = res.setdefault("reasonCode", [])
        if reasons:
            if "text" not in reasons[0]:
                reasons[0] = {**reasons[0], "text": seg.get(14)}  # a copy: codings may be cached
        else:
            reasons.append({"text": seg.get(14)})
    prio = dt.lookup("ExtendedPriorityCodes", seg.get(2))
    if prio:
        res["priority"] = prio[0]
    period = {}
    start, end = dt.dtm(seg.get(7), ctx.default_tz), dt.dtm(seg.get(8), ctx.default_tz)
    if start:
        period["start"] = start
    if end:
        period["end"] = end
    if period:
        res["occurrencePeriod"] = period
    if st.encounter_ref is not None:
        res["encounter"] = st.encounter_ref
    _with_patient(ctx, st, res, "subject", ("RF1", str(seg.index)))
    st.last = res


_ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"


def h_aut(ctx: Context, seg: Segment, st: State) -> None:
    """AUT (no IG table) -> the payer's authorization as a preauthorization ClaimResponse:
    AUT-6 identifier, AUT-2/3 the insurer, AUT-4/5 the preauthorization period, AUT-7
    (reimbursement limit) the benefit total, AUT-10 (process date, else the message time) its
    creation, AUT-28 a process note."""
    insurer = _aut_insurer(ctx, seg, st)
    created = dt.dtm(seg.get(10), ctx.default_tz) or dt.dtm(ctx.msg.msh.get(7), ctx.default_tz)
    if insurer is None or not created:
        return
    res = fm.apply(fm.AUT, seg, _new("ClaimResponse"), ctx)
    res["status"] = "entered-in-error" if seg.get(29).upper() == "D" else "active"
    res["use"] = "preauthorization"
    res["outcome"] = "complete"
    res["type"] = {"text": "unknown"}  # required; AUT does not say the kind of claim
    res["created"] = created
    res["insurer"] = insurer
    period = {}
    start, end = dt.dtm(seg.get(4), ctx.default_tz), dt.dtm(seg.get(5), ctx.default_tz)
    if start:
        period["start"] = start
    if end:
        period["end"] = end
    if period:
        res["preAuthPeriod"] = period
    amount = dt.number(seg.get(7, 1, 1))
    if amount is not None:
        money: Json = {"value": amount}
        if seg.get(7, 1, 2):
            money["currency"] = seg.get(7, 1, 2)
        benefit = {"coding": [dt.coding("benefit", _ADJUDICATION, "Benefit Amount")]}
        res["total"] = [{"category": benefit, "amount": money}]
    _with_patient(ctx, st, res, "patient", ("AUT", str(seg.index)))


def _aut_insurer(ctx: Context, seg: Segment, st: State) -> Json | None:
    """AUT-2 (payor company id) and AUT-3 (its name) as an Organization; else the payor of the
    Coverage the AUT follows."""
    code, name = seg.get(2), seg.get(3)
    if code or name:
        org: Json = {"resourceType": "Organization"}
        if name:
            org["name"] = name
        if code:
            ident: Json = {"value": code}
            org["identifier"] = [ident]
            return ctx.add(org, ident=dict(ident))
        return ctx.add_shared(org, resource_id("Organization", ctx.scope, name))
    last = st.last
    if last is not None and last.get("resourceType") == "Coverage" and last.get("payor"):
        payor: Json = last["payor"][0]
        return payor
    return None


#: Table 0498 consent status -> Consent.status.
_CONSENT_STATUS = {
    "A": "active",
    "B": "active",
    "L": "active",
    "P": "proposed",
    "R": "rejected",
    "X": "inactive",
}
_CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
#: Table 0496 consent types that are privacy consents (release of information, privacy notice).
_PRIVACY_CONSENTS = frozenset({"001", "003"})


def h_con(ctx: Context, seg: Segment, st: State) -> None:
    """CON (no IG table) -> Consent: CON-2 (consent type) as the category, and as the scope
    when it is a privacy consent (else its text); CON-5 (consent text) the policy rule; CON-11
    (table 0498) the status; CON-13 (decision) the date; CON-14/15 the provision period."""
    if ctx.patient_ref is None or not (seg.get(2) or seg.get(5)):
        return
    res: Json = {"resourceType": "Consent"}
    res["status"] = _CONSENT_STATUS.get(seg.get(11).upper(), "active" if not seg.get(11) else "draft")
    kind = dt.cwe_codeable_concept(seg.value(2), ctx) if seg.get(2) else None
    if seg.get(2) in _PRIVACY_CONSENTS:
        res["scope"] = {"coding": [dt.coding("patient-privacy", _CONSENT_SCOPE, "Privacy Consent")]}
    else:
        res["scope"] = {"text": seg.get(2, 2) or seg.get(2) or "unknown"}
    res["category"] = [kind or {"text": "unknown"}]
    res["patient"] = ctx.patient_ref
    decided = dt.dtm(seg.get(13), ctx.default_tz)
    if decided:
        res["dateTime"] = decided
    # ppc-1 wants a policy or a policyRule: the consent text names what was agreed to.
    res["policyRule"] = {"text": seg.get(5) or seg.get(2, 2) or seg.get(2)}
    if seg.get(4):
        ident = dt.ei_identifier(seg.value(4), ctx)
        if ident:
            res["identifier"] = [ident]
    period: Json = {}
    start, end = dt.dtm(seg.get(14), ctx.default_tz), dt.dtm(seg.get(15), ctx.default_tz)
    if start:
        period["start"] = start
    if end:
        period["end"] = end
    if period:
        res["provision"] = {"period": period}
    ctx.add(res, ident=(res.get("identifier") or [None])[0], key=("CON", str(seg.index)))


def h_inv(ctx: Context, seg: Segment, st: State) -> None:
    """INV (no IG table) -> the inventory item as a Substance: INV-1 code, INV-2 status
    (table 0383: OK and warnings active, errors inactive), INV-3 category, the container
    (INV-4) with its current (INV-8, else available INV-9) quantity in INV-11 units and INV-12
    expiry as the instance, INV-16/17/18 (test/fluid, lot, supplier) identifiers."""
    res = fm.apply(fm.INV, seg, _new("Substance"), ctx)
    if "code" not in res:
        return
    status = seg.get(2).upper()
    if status:
        res["status"] = "active" if status == "OK" or status.endswith("W") else "inactive"
    instance: Json = {}
    container = dt.DATATYPES["CWE[Identifier]"](seg.value(4), ctx, None) if seg.get(4) else None
    if container:
        instance["identifier"] = container
    amount = dt.number(seg.get(8)) if seg.get(8) else dt.number(seg.get(9))
    if amount is not None:
        instance["quantity"] = {"value": amount, **dt.cwe_quantity_unit(seg.value(11), ctx)}
    expiry = dt.dtm(seg.get(12), ctx.default_tz)
    if expiry:
        instance["expiry"] = expiry
    if instance:
        res["instance"] = [instance]
    ctx.add(res, key=("INV", str(seg.index)))


def _order_elements(ctx: Context, st: State) -> Json:
    """The ORC's order numbers (ORC-2/3, ORC-4 as a PGN identifier), status, time and orderer as
    the IG maps them for a ServiceRequest, for the other request resources an order group
    makes (NutritionOrder, SupplyRequest)."""
    if st.orc is None:
        return {}
    base = fm.apply(fm.ORC_SR, st.orc, _new("ServiceRequest"), ctx)
    out: Json = {k: base[k] for k in ("identifier", "status", "authoredOn", "requester") if k in base}
    if "requisition" in base:
        out.setdefault("identifier", []).append(base["requisition"])
    return out


def h_ods(ctx: Context, seg: Segment, st: State) -> None:
    """ODS (no IG table) -> the order group's NutritionOrder: ODS-3 (diet, supplement or
    preference codes, by ODS-1 type D/S/P) as the oral diet type, a supplement, or food
    preference modifiers; ODS-4 (text instruction) the supplement's or else the oral diet's
    instruction. The ORC gives its numbers, status, time (dateTime) and orderer; the
    ODS segments of one group make one NutritionOrder."""
    if ctx.patient_ref is None or not (seg.raw(3) or seg.raw(4)):
        return
    res = st.last
    if res is None or res.get("resourceType") != "NutritionOrder" or st.orc is None or not st.order_used:
        elements = _order_elements(ctx, st)
        when = elements.get("authoredOn") or dt.dtm(ctx.msg.msh.get(7), ctx.default_tz)
        if not when:
            return  # NutritionOrder.dateTime is required
        res = {"resourceType": "NutritionOrder", "status": elements.get("status", "unknown")}
        if "identifier" in elements:
            res["identifier"] = elements["identifier"]
        res["intent"] = "order"
        res["patient"] = ctx.patient_ref
        if st.encounter_ref is not None:
            res["encounter"] = st.encounter_ref
        res["dateTime"] = when
        if "requester" in elements:
            res["orderer"] = elements["requester"]
        ref = ctx.add(res, ident=_first_ident(res), key=("ODS", str(seg.index)))
        if st.orc is not None:
            _order_provenance(ctx, st.orc, ref)
            st.order_used = True
        st.focus.append(ref)
        res = st.last = _stored(ctx, ref, res)
    codes = [c for c in (dt.cwe_codeable_concept(r, ctx) for r in seg.reps(3)) if c] if seg.raw(3) else []
    texts = [r.text() for r in seg.reps(4) if r.text()] if seg.raw(4) else []
    kind = seg.get(1).upper()  # table 0159: D diet, S supplement, P preference
    if kind == "S":
        supplements: list[Json] = [{"type": code} for code in codes] or [{}]
        for supplement in supplements:
            if texts:
                supplement["instruction"] = "\n".join(texts)
            if supplement:
                res.setdefault("supplement", []).append(supplement)
        return
    if kind == "P":
        if codes:
            res.setdefault("foodPreferenceModifier", []).extend(codes)
    elif codes:
        res.setdefault("oralDiet", {}).setdefault("type", []).extend(codes)
    if texts:
        # A preference's text too: the oral diet's instructions (nor-1 wants a diet or supplement).
        diet = res.setdefault("oralDiet", {})
        diet["instruction"] = "\n".join([diet["instruction"], *texts] if "instruction" in diet else texts)


#: ServiceRequest.status (as the IG maps ORC-1/ORC-5) -> SupplyRequest.status.
_SUPPLY_STATUS = {"revoked": "cancelled", "on-hold": "suspended"}


def h_rqd(ctx: Context, seg: Segment, st: State) -> None:
    """RQD (no IG table) -> SupplyRequest: the item by its internal, external and hospital item
    codes (RQD-2/3/4), RQD-5/6 the quantity, RQD-9 (deliver to) an Organization, RQD-10 (date
    needed) the occurrence; the ORC gives its numbers, status, authoredOn and requester."""
    quantity = dt.number(seg.get(5))
    codings = [
        c
        for field in (2, 3, 4)
        if seg.get(field)
        for c in (dt.cwe_codeable_concept(seg.value(field), ctx) or {}).get("coding", [])
    ]
    if ctx.patient_ref is None or quantity is None or not codings:
        return  # item[x] and quantity are required
    elements = _order_elements(ctx, st)
    res: Json = {"resourceType": "SupplyRequest"}
    if "identifier" in elements:
        res["identifier"] = elements["identifier"]
    status = elements.get("status")
    if status:
        res["status"] = _SUPPLY_STATUS.get(status, status)
    res["itemCodeableConcept"] = {"coding": codings}
    res["quantity"] = (
        {"value": quantity, **dt.cwe_quantity_unit(seg.value(6), ctx)} if seg.get(6) else {"value": quantity}
    )
    when = dt.dtm(seg.get(10), ctx.default_tz)
    if when:
        res["occurrenceDateTime"] = when
    if "authoredOn" in elements:
        res["authoredOn"] = elements["authoredOn"]
    if "requester" in elements:
        res["requester"] = elements["requester"]
    if seg.get(9):
        deliver_to = dt.DATATYPES["CWE[Organization]"](seg.value(9), ctx, None)
        if deliver_to:
            res["deliverTo"] = deliver_to
    ref = ctx.add(res, ident=_first_ident(res), key=("RQD", str(seg.index)))
    if st.orc is not None:
        _order_provenance(ctx, st.orc, ref)
        st.order_used = True
    st.focus.append(ref)
    st.last = _stored(ctx, ref, res)


def h_cti(ctx: Context, seg: Segment, st: State) -> None:
    """CTI (no IG table) -> the clinical trial as a ResearchStudy: CTI-1 (sponsor study id) its
    identifier, CTI-2 (study phase) its phase. The study the order belongs to is under way
    (status active, a required element CTI does not carry); the order group's request names it
    as supporting information."""
    if not seg.get(1):
        return
    res = fm.apply(fm.CTI, seg, _new("ResearchStudy"), ctx)
    if "identifier" not in res:
        return
    res["status"] = "active"
    ref = ctx.add(res, ident=dict(res["identifier"][0]), key=("CTI", str(seg.index)))
    request = st.medication if st.medication is not None else st.order
    if request is not None:
        key = "supportingInformation" if request["resourceType"] == "MedicationRequest" else "supportingInfo"
        if ref not in request.setdefault(key, []):
            request[key].append(ref)


def h_ft1(ctx: Context, seg: Segment, st: State) -> None:
    """FT1 -> ChargeItem."""
    res = _clinical(ctx, seg, st, fm.FT1, "ChargeItem", "subject")
    if res is None:
        return
    res["status"] = "billable"
    if "code" not in res:
        res["code"] = {"text": "unknown"}
    if seg.get(4, 2):
        # FT1-4 is a DR: a range is the occurrence period.
        period = dt.dr_period(seg.value(4), ctx)
        if period:
            res.pop("occurrenceDateTime", None)
            res["occurrencePeriod"] = period
    # FT1-11 (extended amount), else FT1-12 (unit amount): the price charged (CP.1 is MO).
    field = 11 if seg.get(11) else 12
    amount = dt.number(seg.get(field, 1, 1))
    if amount is not None:
        money: Json = {"value": amount}
        if seg.get(field, 1, 2):
            money["currency"] = seg.get(field, 1, 2)
        res["priceOverride"] = money
    if st.encounter_ref is not None:
        res["context"] = st.encounter_ref
    account = _patient_account(ctx)
    if account is not None:
        res["account"] = [account[1]]
    if seg.get(25) or seg.get(29):
        _charged_services(ctx, seg, st, res)
    if seg.get(34) or seg.get(35):
        _charged_product(ctx, seg, res)
    ident = (res.get("identifier") or [None])[0]
    st.last = _stored(ctx, ctx.add(res, ident=ident, key=("FT1", str(seg.index))), res)


def _charged_services(ctx: Context, seg: Segment, st: State, charge: Json) -> None:
    """FT1 (no IG table): the procedure charged (FT1-25) as a Procedure and the drug charged
    (FT1-29 NDC code, FT1-43 quantity, FT1-42 prescription number) as a MedicationDispense, both
    the ChargeItem's ``service``. A charge says nothing of their state, hence status unknown."""
    services: list[Json] = []
    code = dt.cwe_codeable_concept(seg.value(25), ctx) if seg.get(25) else None
    if code:
        proc: Json = {"resourceType": "Procedure", "status": "unknown", "code": code}
        proc["subject"] = ctx.patient_ref
        if st.encounter_ref is not None:
            proc["encounter"] = st.encounter_ref
        ref = ctx.add(proc, key=("FT1", str(seg.index), "Procedure"))
        services.append({**ref, "type": "Procedure"})
    drug = dt.cwe_codeable_concept(seg.value(29), ctx) if seg.get(29) else None
    if drug:
        dispense: Json = {"resourceType": "MedicationDispense", "status": "unknown"}
        dispense["medicationCodeableConcept"] = drug
        dispense["subject"] = ctx.patient_ref
        if st.encounter_ref is not None:
            dispense["context"] = st.encounter_ref
        quantity = dt.cq_quantity(seg.value(43), ctx) if seg.get(43) else None
        if quantity:
            dispense["quantity"] = quantity
        if seg.get(42):
            dispense["authorizingPrescription"] = [
                {"type": "MedicationRequest", "identifier": {"value": seg.get(42)}}
            ]
        ref = ctx.add(dispense, key=("FT1", str(seg.index), "MedicationDispense"))
        services.append({**ref, "type": "MedicationDispense"})
    if services:
        charge["service"] = services


def _charged_product(ctx: Context, seg: Segment, charge: Json) -> None:
    """FT1-34 (item number) and FT1-35 (model number), no IG table: the item charged, a Device
    as the ChargeItem's product (an item number names a catalogue item, not one device, so the
    Device's id is the message's)."""
    device: Json = {"resourceType": "Device"}
    ident = dt.DATATYPES["CWE[Identifier]"](seg.value(34), ctx, None) if seg.get(34) else None
    if ident:
        device["identifier"] = [ident]
    if seg.get(35):
        device["modelNumber"] = seg.get(35)
    if len(device) > 1:
        charge["productReference"] = ctx.add(device, key=("FT1", str(seg.index), "Device"))


def _patient_account(ctx: Context) -> tuple[Json, Json] | None:
    """The patient's Account (made from PID-18) and a reference to it, if the bundle has one."""
    patient_ref = ctx.patient_ref
    for e in ctx.entries.values():
        if e.rtype == "Account" and patient_ref in e.resource.get("subject", ()):
            return e.resource, ctx.ref("Account", e.rid)
    return None


def _rid_in(reference: str) -> str:
    """The id in ``urn:uuid:<id>`` or ``Type/<id>`` (ids must not depend on the bundle type)."""
    return reference.rpartition(":")[2].rpartition("/")[2]


def _stored(ctx: Context, ref: Json, res: Json) -> Json:
    """The resource the bundle holds for ``ref``, just added as ``res``: ``res`` itself, or the
    resource with the same id that absorbed it. Later segments (NTE, PRT, TQ1, IN2...) complete
    the stored one, so what they carry is not lost on a merged duplicate. (Another patient's
    resource never absorbs ``res``: ``Context.add`` keeps it apart.)"""
    entry = ctx.entries.get(_rid_in(ref["reference"]))
    return entry.resource if entry is not None else res


def _practitioner_address(ctx: Context, practitioner: Json, seg: Segment, field: int) -> None:
    """The address field ``field`` of ``seg`` on the referenced Practitioner (ROL-11, PRT-14)."""
    if not seg.get(field):
        return
    entry = ctx.entries.get(_rid_in(practitioner["reference"]))
    addresses = [a for a in (dt.xad_address(r, ctx) for r in seg.reps(field)) if a]
    if entry is not None and addresses and "address" not in entry.resource:
        entry.resource["address"] = addresses


def h_rol(ctx: Context, seg: Segment, st: State) -> None:
    """ROL -> PractitionerRole (IG ``ROL[Encounter-PractitionerRole]``): an Encounter
    participant, or (PP after PID, IG ``ROL[Patient-GeneralPractitioner]``) the patient's
    primary care provider."""
    role = fm.apply(fm.ROL, seg, _new("PractitionerRole"), ctx)
    practitioner = role.get("practitioner")
    if seg.raw(10) and "organization" in role:
        _unit_type(ctx, role["organization"], seg, 10)  # IG ROL-10
    if _patient_level(st) and not (seg.get(3) == "PP" and seg.get(3, 3).upper() in ("HL70443", "")):
        # IG ADT_A01 PID.ROL: a role other than PP (table 0443) is a member of the patient's
        # CareTeam (IG ROL[CareTeam]): ROL-3 and ROL-9 its roles, ROL-4 the member (else the
        # ROL-14 organisation), ROL-5/6 its period, ROL-8 the team's reason, ROL-12 its telecom.
        reason = dt.cwe_codeable_concept(seg.value(8), ctx) if seg.get(8) else None
        _care_team_member(ctx, st, role, practitioner, [*role.get("code", []), *role.get("specialty", [])])
        team = st.care_team
        if team is not None:
            if reason and reason not in team.get("reasonCode", []):
                team.setdefault("reasonCode", []).append(reason)
            for telecom in role.get("telecom", []):
                if telecom not in team.get("telecom", []):
                    team.setdefault("telecom", []).append(telecom)
        return
    if practitioner is None:
        return
    codes = role.get("code") or [{}]
    code = (codes[0].get("coding") or [{}])[0].get("code", "")
    org = _rid_in((role.get("organization") or {}).get("reference", ""))
    _practitioner_address(ctx, practitioner, seg, 11)
    ident = (role.get("identifier") or [None])[0]
    if ident is not None and ident.get("value") and not _role_taken(ctx, ident, practitioner):
        ref = ctx.add(role, ident=ident)
    else:
        ref = ctx.add_shared(
            role, resource_id("PractitionerRole", _rid_in(practitioner["reference"]), code, org)
        )
    if st.encounter is not None:
        part: Json = {"individual": ref}
        if role.get("code"):
            part["type"] = role["code"]
        if role.get("period"):
            part["period"] = role["period"]
        st.encounter.setdefault("participant", []).append(part)
    elif st.patient is not None and seg.get(3) == "PP":
        st.patient.setdefault("generalPractitioner", []).append(ref)


def _patient_level(st: State) -> bool:
    """True while the segments read belong to the patient (after PID/PD1, before a visit,
    order or other group): where ROL and PRT name the patient's care team."""
    return st.patient is not None and st.encounter is None and st.last is st.patient


def _care_team_member(
    ctx: Context, st: State, role: Json, member: Json | None, roles: list[Json], *, practitioner: bool = True
) -> None:
    """Add a participant to the patient's CareTeam (made by its first member, subject the
    patient): ``member`` (else the role's organisation) in ``roles``, for the role's period, on
    behalf of the role's organisation when the member is a Practitioner (R4 ctm-1: a
    PractitionerRole names its organisation itself)."""
    org = role.get("organization")
    who = member or org
    if who is None or ctx.patient_ref is None:
        return
    part: Json = {}
    if roles:
        part["role"] = roles
    part["member"] = who
    if member is not None and org is not None and practitioner:
        part["onBehalfOf"] = org
    if role.get("period"):
        part["period"] = role["period"]
    _join_care_team(ctx, st, part)


def _join_care_team(ctx: Context, st: State, part: Json) -> None:
    """Add ``part`` to the patient's CareTeam (made by its first participant, subject the
    patient), once."""
    if ctx.patient_ref is None:
        return
    if st.care_team is None:
        team: Json = {"resourceType": "CareTeam", "subject": ctx.patient_ref, "participant": []}
        ctx.add(team, key=("CareTeam", ctx.patient_ref["reference"]))
        st.care_team = team
    if part not in st.care_team["participant"]:
        st.care_team["participant"].append(part)


_CASE_MANAGER: Json = {
    "coding": [{"system": "http://snomed.info/sct", "code": "768832004"}],
    "text": "case manager",
}


def h_in3(ctx: Context, seg: Segment, st: State) -> None:
    """IN3 (insurance certification) -> IG IN3[CareTeam]: the IN3-21 case manager (a name, ST)
    is a participant of the patient's CareTeam in the case-manager role."""
    name = seg.get(21).strip()
    if name:
        _join_care_team(ctx, st, {"role": [dict(_CASE_MANAGER)], "member": {"display": name}})


#: IG ADT_A01 PID.PRT: the participation roles that make a PRT after PID a CareTeam member
#: (the IG's ORU_R01 and OML_O21 maps read that PRT as a RelatedPerson instead).
_CARE_TEAM_ROLES = frozenset(
    {"AD", "AP", "ARI", "AT", "CP", "FHCP", "OP", "PH", "PP", "PRI", "RP", "RT", "VP", "PO"}
)


def _unit_type(ctx: Context, org: Json, seg: Segment, field: int) -> None:
    """IG PRT-7 / ROL-10 (organization unit type): the type of the participant's Organization
    ``org`` (a Reference), unless it has one."""
    entry = ctx.entries.get(_rid_in(org.get("reference", "")))
    unit = dt.cwe_codeable_concept(seg.value(field), ctx)
    if entry is not None and entry.rtype == "Organization" and unit and "type" not in entry.resource:
        entry.resource["type"] = [unit]


_EQUIPMENT_METHOD = {"BP": "B", "CP": "C", "FX": "F"}


def _contact_method(use: str, equipment: str) -> str:
    """The table 0185 method of contact an XTN is (XTN.2 use, XTN.3 equipment, upper case): B
    beeper, C cellular phone, E e-mail, F fax, H home phone, O office phone, or ''."""
    if equipment in ("INTERNET", "X.400") or use == "NET":
        return "E"
    if equipment in _EQUIPMENT_METHOD:
        return _EQUIPMENT_METHOD[equipment]
    if use in ("PRN", "PRS", "VHN"):
        return "H"
    return "O" if use == "WPN" else ""


def _preferred_contact(ctx: Context, seg: Segment, telecoms: list[Json] | None) -> None:
    """IG PRT-23 (preferred method of contact, table 0185): the first PRT-15 telecom of that
    kind gets the iso21090-preferred extension."""
    method = seg.get(23).strip().upper()
    if not telecoms or not method:
        return
    for rep in seg.reps(15):
        if _contact_method(rep.get(2).upper(), rep.get(3).upper()) != method:
            continue
        made = dt.xtn_contact_point(rep, ctx)
        telecom = next((t for t in telecoms if t == made), None) if made is not None else None
        if telecom is not None:
            telecom.setdefault("extension", []).append(
                {"url": _SD + "iso21090-preferred", "valueBoolean": True}
            )
            return


def _prt_related_person(ctx: Context, seg: Segment) -> None:
    """IG ORU_R01 / OML_O21 PATIENT.PRT that is not PP -> RelatedPerson (IG PRT[RelatedPerson],
    ``fm.PRT_RELATED``), with PRT-5's identifier first and its name."""
    if ctx.patient_ref is None or not seg.raw(5):
        return
    c = dt.comps(seg.value(5), ctx)
    name = xcn_name(seg.value(5), c, ctx)
    if name is None and not c[1]:
        return
    res = fm.apply(fm.PRT_RELATED, seg, _new("RelatedPerson"), ctx)
    res["patient"] = ctx.patient_ref
    if seg.raw(23):
        _preferred_contact(ctx, seg, res.get("telecom"))
    person = ctx.xcn_identifier(seg.value(5), c)
    if person is not None:
        res["identifier"] = [person, *res.get("identifier", [])]
    if name is not None:
        res["name"] = [name]
    given = tuple(name.get("given") or ()) if name else ()
    family = name.get("family", "") if name else ""
    ctx.add_shared(
        res, resource_id("RelatedPerson", ctx.patient_ref["reference"], "PRT", c[1], family, *given)
    )


def _role_taken(ctx: Context, ident: Json, practitioner: Json) -> bool:
    """True when this bundle already has a PractitionerRole with the identifier ``ident`` for
    another practitioner: senders that number ROL-1 per segment group ("1" in every ROL) must
    not merge two people's roles into one."""
    key = (ident.get("system") or ctx.sender_system or "", ident["value"])
    return any(
        e.rtype == "PractitionerRole" and e.ident == key and e.resource.get("practitioner") != practitioner
        for e in ctx.entries.values()
    )


def h_prt(ctx: Context, seg: Segment, st: State) -> None:
    """PRT (v2.7+ participation) -> the participant of the resource it follows: Observation
    performer or device, order/report performer, Encounter participant, or the patient's primary
    care provider (PRT-4 'PP' after PID). A person becomes a PractitionerRole (IG
    ``PRT[PractitionerRole]``), a device a Device (IG ``PRT[Device]``)."""
    if seg.get(2).strip().upper() == "D":
        # IG PRT-2 'D' inactivates the participation: the participant is not linked.
        return
    if _patient_level(st) and st.family in ("ORU", "OML") and seg.get(4).upper() != "PP":
        _prt_related_person(ctx, seg)
        return
    role = fm.apply(fm.PRT_ROLE, seg, _new("PractitionerRole"), ctx)
    if seg.raw(23):
        _preferred_contact(ctx, seg, role.get("telecom"))
    person: Json | None = None
    if "practitioner" in role:
        codes = role.get("code") or [{}]
        code = (codes[0].get("coding") or [{}])[0].get("code", "")
        org_rid = _rid_in((role.get("organization") or {}).get("reference", ""))
        _practitioner_address(ctx, role["practitioner"], seg, 14)
        rid = resource_id("PractitionerRole", _rid_in(role["practitioner"]["reference"]), code, org_rid)
        person = ctx.add_shared(role, rid)
    org = role.get("organization")
    if org is not None and seg.raw(7):
        _unit_type(ctx, org, seg, 7)  # IG PRT-7
    device: Json | None = None
    if seg.get(10):
        dev = fm.apply(fm.PRT_DEVICE, seg, _new("Device"), ctx)
        dev_idents = dev.get("identifier") or []
        if dev_idents:
            # The first identifier with a value identifies it (an authority alone does not).
            dev_ident = next((i for i in dev_idents if i.get("value")), None)
            device = ctx.add(dev, ident=dev_ident, key=(seg.name, str(seg.index), "10"))
    who = person or org
    last = st.last or {}
    rtype = last.get("resourceType")
    if rtype == "Observation":
        if who is not None:
            last.setdefault("performer", []).append(who)
        if device is not None and "device" not in last:
            last["device"] = device
        if "location" in role and person is None:
            # IG PRT[Observation-Location]: where the observation was made (PRT-14 its address).
            place = role["location"][0]
            last.setdefault("extension", []).append({"url": _SD + "event-location", "valueReference": place})
            found = ctx.entries.get(_rid_in(place["reference"])) if seg.raw(14) else None
            address = dt.xad_address(seg.value(14), ctx) if found is not None else None
            if found is not None and address and "address" not in found.resource:
                found.resource["address"] = address
    elif rtype in ("ServiceRequest", "DiagnosticReport", "MedicationRequest") and who is not None:
        key = "requester" if rtype != "DiagnosticReport" and seg.get(4) in ("OP", "ORD") else "performer"
        if key == "requester":
            last.setdefault("requester", who)
        elif rtype in ("ServiceRequest", "DiagnosticReport"):
            last.setdefault("performer", []).append(who)
    elif st.encounter is not None and rtype == "Encounter" and person is not None:
        part: Json = {"individual": person}
        if role.get("code"):
            part["type"] = role["code"]
        st.encounter.setdefault("participant", []).append(part)
    elif st.patient is not None and rtype == "Patient" and who is not None:
        if seg.get(4).upper() == "PP":
            st.patient.setdefault("generalPractitioner", []).append(who)
        if seg.get(4).upper() in _CARE_TEAM_ROLES and _patient_level(st):
            # IG PRT[CareTeam]: PRT-4 the role; the person (a PractitionerRole when PRT-6 gives
            # the provider type, else the Practitioner), else the PRT-8 organisation.
            doctor: Json | None = role.get("practitioner")
            as_role = bool(seg.get(6))
            member = person if as_role else doctor
            _care_team_member(ctx, st, role, member, list(role.get("code", [])), practitioner=not as_role)
            if doctor is not None and not seg.get(6) and role.get("telecom"):
                # IG PRT[CareTeam] PRT-15: the member Practitioner's telecom (PRT-14 its address,
                # added above); a PractitionerRole member has it already.
                entry = ctx.entries.get(_rid_in(doctor["reference"]))
                if entry is not None and "telecom" not in entry.resource:
                    entry.resource["telecom"] = role["telecom"]


def h_prd(ctx: Context, seg: Segment, st: State) -> None:
    """PRD (provider data) -> Practitioner in a PractitionerRole at its organisation (the IG
    has no PRD map: the fields go to the standard elements of those resources). PRD-11 and
    PRD-13 are the organisation's address and telecom."""
    person = fm.apply(fm.PRD_PRACTITIONER, seg, _new("Practitioner"), ctx)
    names: list[Json] = person.get("name") or []
    idents: list[Json] = person.get("identifier") or []
    if not names and not idents:
        return
    if idents:
        ref = ctx.add(person, ident=idents[0])
    else:
        name = names[0]
        ref = ctx.add_shared(
            person,
            resource_id("Practitioner", ctx.scope, *name.get("given", ()), name.get("family", "")),
        )
    role = fm.apply(fm.PRD_ROLE, seg, _new("PractitionerRole"), ctx)
    role["practitioner"] = ref
    org = role.get("organization")
    if org is not None:
        entry = ctx.entries.get(_rid_in(org["reference"]))
        if entry is not None:
            for field, key, convert in (
                (11, "address", dt.xad_address),
                (13, "telecom", dt.xtn_contact_point),
            ):
                if seg.raw(field) and key not in entry.resource:
                    found = [x for x in (convert(r, ctx) for r in seg.reps(field)) if x]
                    if found:
                        entry.resource[key] = found
    code = ((role.get("code") or [{}])[0].get("coding") or [{}])[0].get("code", "")
    org_rid = _rid_in(org["reference"]) if org is not None else ""
    role_ref = ctx.add_shared(role, resource_id("PractitionerRole", _rid_in(ref["reference"]), code, org_rid))
    # In a referral the referring provider (RP) is its requester, the referred-to (RT) a performer.
    referral = st.last
    if referral is None or _PATIENT_REFERRAL not in referral.get("category", ()):
        return
    kind = seg.get(1).upper()
    if kind == "RP":
        referral.setdefault("requester", role_ref)
    elif kind == "RT" and role_ref not in referral.setdefault("performer", []):
        referral["performer"].append(role_ref)


def h_evn(ctx: Context, seg: Segment, st: State) -> None:
    """EVN -> Provenance of the message's event (recorded, reason, operator)."""
    if not ctx.options.provenance:
        return
    res = fm.apply(fm.EVN, seg, _new("Provenance"), ctx)
    if "recorded" not in res:
        recorded = dt.instant(ctx.msg.msh.get(7), ctx.default_tz)
        if recorded is None:
            return  # Provenance.recorded is a required instant: no time, no Provenance
        res["recorded"] = recorded
    event = seg.get(1) or ctx.msg.trigger_event
    res["activity"] = {"coding": [dt.coding(event, dt.V2_CS + "0003", dt.v2_display("0003", event) or None)]}
    if "agent" not in res:
        # IG MSH[Provenance-Operator]: without an EVN-5 operator, the sending responsible
        # organisation (MSH-22), else the sending facility (MSH-4), else the application.
        msh = ctx.msg.msh
        org = (ctx.organization_from_xon(msh.value(22)) if msh.get(22) else None) or (
            ctx.organization_from_hd(msh.value(4)) or ctx.organization_from_hd(msh.value(3))
        )
        if org is None:
            return
        res["agent"] = [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "author",
                        }
                    ]
                },
                "who": org,
            }
        ]
    res["_pending_target"] = True
    st.pending_targets.append(res)
    ctx.add(res, key=("EVN", str(seg.index)))


Handler = Callable[[Context, Segment, State], None]

#: Segment id -> handler. Segments not listed (Z-segments, SFT, ...) are ignored.
HANDLERS: dict[str, Handler] = {
    "EVN": h_evn,
    "PID": h_pid,
    "PD1": h_pd1,
    "ARV": h_arv,
    "DB1": h_db1,
    "CTD": h_ctd,
    "MRG": h_mrg,
    "NK1": h_nk1,
    "PV1": h_pv1,
    "PV2": h_pv2,
    "AL1": h_al1,
    "IAM": h_al1,
    "DG1": h_dg1,
    "PR1": h_pr1,
    "ACC": h_acc,
    "PDA": h_pda,
    "GT1": h_gt1,
    "IN1": h_in1,
    "IN2": h_in2,
    "IN3": h_in3,
    "RF1": h_rf1,
    "AUT": h_aut,
    "INV": h_inv,
    "CON": h_con,
    "ORC": h_orc,
    "OBR": h_obr,
    "OBX": h_obx,
    "NTE": h_nte,
    "SPM": h_spm,
    "SAC": h_sac,
    "TQ1": h_tq1,
    "RXA": h_rxa,
    "RXR": h_rxr,
    "RXO": h_rx_order,
    "RXE": h_rx_order,
    "RXD": h_rxd,
    "RXC": h_rxc,
    "TXA": h_txa,
    "CTI": h_cti,
    "ODS": h_ods,
    "RQD": h_rqd,
    "SCH": h_sch,
    "AIS": h_ais,
    "AIG": h_ais,
    "AIL": h_ais,
    "AIP": h_ais,
    "FT1": h_ft1,
    "ROL": h_rol,
    "PRT": h_prt,
    "PRD": h_prd,
    "BLG": h_blg,
}


def message_header(ctx: Context, st: State) -> Json:
    """MSH -> MessageHeader (IG ``MSH[MessageHeader]``)."""
    # Built from MSH (but MSH-7 and MSH-10) and the first SFT, which a sender repeats in every
    # message: replayed from an earlier message with the same header (see Context.replay).
    fields = ctx.msg.msh.raw_fields()
    software = ctx.msg.segment("SFT")
    key = ("MSH", *fields[:7], *fields[8:10], *fields[11:], software.to_er7() if software else None)
    header = cast(Json, ctx.replay(key, lambda: _message_header(ctx)))
    msa = ctx.msg.segment("MSA")
    if msa is not None:
        _msa_response(msa, header)
    return header


#: Table 0008 -> FHIR response-code: an error in the content is not worth resending unchanged
#: (fatal-error); a reject (unsupported message, system down) may pass later (transient-error).
_RESPONSE_CODES = {
    "AA": "ok",
    "CA": "ok",
    "AE": "fatal-error",
    "CE": "fatal-error",
    "AR": "transient-error",
    "CR": "transient-error",
}
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def _msa_response(msa: Segment, header: Json) -> None:
    """IG MSA[MessageHeader]: MSA-1 -> response.code, MSA-2 (the acknowledged message's control
    id) -> response.identifier. Both are required there, and the identifier is a FHIR ``id``: a
    control id outside [A-Za-z0-9-.]{1,64} leaves the response out."""
    code = _RESPONSE_CODES.get(msa.get(1).strip().upper())
    ident = msa.get(2).strip()
    if code and _FHIR_ID.fullmatch(ident):
        header["response"] = {"identifier": ident, "code": code}


def _message_header(ctx: Context) -> Json:
    msh = ctx.msg.msh
    res = fm.apply(fm.MSH, msh, _new("MessageHeader"), ctx)
    if "eventCoding" not in res:
        # MessageHeader.event[x] is required: without a trigger event, the message type.
        res["eventCoding"] = dt.coding(msh.get(9, 1), dt.V2_CS + "0003")
    # IG: MSH-24 (sending network address) is the source when valued, else MSH-3.
    src = msh.value(24) if msh.get(24) else msh.value(3)
    source: Json = {}
    if src.get(1):
        source["name"] = src.get(1)
    _set_endpoint(source, src)
    software = ctx.msg.segment("SFT")
    if software is not None and software.get(3):
        source["software"] = software.get(3)
        if software.get(2):
            source["version"] = software.get(2)
    res["source"] = source
    if msh.get(5) or msh.get(6) or msh.get(25) or msh.get(23):
        target = msh.value(25) if msh.get(25) else msh.value(5)
        dest: Json = {}
        _set_endpoint(dest, target)
        if target.get(1):
            dest["name"] = target.get(1)
        # IG: MSH-23 (receiving responsible organization) is the receiver, else MSH-6.
        receiver = (
            ctx.organization_from_xon(msh.value(23))
            if msh.get(23)
            else ctx.organization_from_hd(msh.value(6))
        )
        if receiver:
            dest["receiver"] = receiver
        res["destination"] = [dest]
    lang = msh.get(19)
    res.pop("language", None)
    if lang and len(lang) <= 8 and lang.replace("-", "").isalpha():
        res["language"] = lang
    meta = dt.pt_meta(msh.value(11), ctx) if msh.raw(11) else None
    if meta:
        res["meta"] = meta  # IG MSH-11 (PT[Meta]): processing id and mode as tags
    label = dt.coding(msh.get(8), None, msh.get(8).strip()) if msh.get(8) else None
    if label and "code" in label:
        # IG MSH-8 (ST) -> meta.security: the text is both the label's code and its display.
        res.setdefault("meta", {})["security"] = [label]
    for field, vocab in ((26, "ConfidentialityClassification"), (27, "SecurityLabelHandlingInstructions")):
        label = dt.cwe_coding(msh.value(field), ctx, vocab) if msh.get(field) else None
        if label:
            res.setdefault("meta", {}).setdefault("security", []).append(label)
    country = msh.get(17)
    sender = res.get("sender")
    if country and sender is not None:
        # IG MSH-17: the sending organisation's country.
        org = ctx.entries.get(_rid_in(sender["reference"]))
        if org is not None and not org.resource.get("address"):
            org.resource["address"] = [{"country": country}]
    return res


_AUTHOR = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author"}
    ]
}


_INSTALL_DATE = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Device.version.installDate"


def software_devices(ctx: Context) -> list[Json]:
    """SFT -> Device (IG ``SFT[Device]``); returns references."""
    refs: list[Json] = []
    for sft in ctx.msg.segments_named("SFT"):
        dev: Json = {"resourceType": "Device"}
        if sft.get(1):
            dev["manufacturer"] = sft.get(1)
        if sft.get(2):
            version: Json = {"value": sft.get(2)}
            installed = dt.dtm(sft.get(6), ctx.default_tz) if sft.get(6) else None
            if installed:
                # IG SFT-6: the install date, as the R5 Device.version.installDate extension.
                version["extension"] = [{"url": _INSTALL_DATE, "valueDateTime": installed}]
            dev["version"] = [version]
        if sft.get(3):
            dev["deviceName"] = [{"name": sft.get(3), "type": "manufacturer-name"}]
        if sft.get(4):
            dev["modelNumber"] = sft.get(4)
        if sft.get(5):
            dev["note"] = [{"text": sft.get(5)}]
        if len(dev) > 1:
            refs.append(
                ctx.add_shared(dev, resource_id("Device", sft.get(1), sft.get(3), sft.get(2), sft.get(4)))
            )
    return refs


def message_provenance(ctx: Context, header_ref: Json | None) -> None:
    """MSH -> Provenance of the message source (IG ``MSH[Provenance-Source]``): who sent it
    (MSH-4 / MSH-22), when (MSH-7), from which software (SFT, MSH-3)."""
    msh = ctx.msg.msh
    recorded = dt.instant(msh.get(7), ctx.default_tz)
    if recorded is None or header_ref is None:
        return
    agents: list[Json] = []
    if not msh.get(22):
        org = ctx.organization_from_hd(msh.value(4))
        if org:
            agents.append({"type": _AUTHOR, "who": org})
    else:
        org = ctx.organization_from_xon(msh.value(22))
        if org:
            agents.append({"type": _AUTHOR, "who": org})
    if not agents:
        return
    msg_type = "^".join(p for p in (msh.get(9, 1), msh.get(9, 2), msh.get(9, 3)) if p)
    prov: Json = {
        "resourceType": "Provenance",
        "target": [header_ref],
        "recorded": recorded,
        "occurredDateTime": recorded,
        "activity": {"coding": [{"display": f"message - {msg_type}"}]},
        "agent": agents,
    }
    entities = [{"role": "source", "what": ref} for ref in software_devices(ctx)]
    if msh.get(3) and msh.get(24):
        ident = dt.hd_identifier(msh.value(3), ctx)
        if ident:
            dev = {"resourceType": "Device", "identifier": [ident]}
            ref = ctx.add_shared(dev, resource_id("Device", "MSH-3", msh.get(3), msh.get(3, 2)))
            entities.append({"role": "source", "what": ref})
    if entities:
        prov["entity"] = entities
    ctx.add(prov, key=("MSH", "provenance"))


_DATA_ABSENT = {
    "extension": [
        {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}
    ]
}


def _set_endpoint(target: Json, v: Value) -> None:
    """HD -> MessageHeader endpoint (IG ``HD[MessageHeader.source-endpoint]``): a URI from an ISO,
    UUID, DNS or URI universal id; otherwise the required endpoint is marked data-absent."""
    uid, kind = v.get(2), v.get(3).upper()
    prefix = {"ISO": "urn:oid:", "UUID": "urn:uuid:", "DNS": "urn:dns:", "URI": ""}.get(kind)
    if uid and prefix is not None:
        target["endpoint"] = prefix + uid
    else:
        target["_endpoint"] = _DATA_ABSENT


def convert_message(msg: Hl7Message, options: Options | None = None) -> Json:
    """Convert one parsed message to a FHIR R4 Bundle (a dict)."""
    options = options or Options()
    ctx = Context(msg, options)
    st = State(msg)
    header = message_header(ctx, st) if options.message_header else None
    header_ref = ctx.add(header, key=("MSH",)) if header is not None else None
    if options.provenance:
        message_provenance(ctx, header_ref)
    for seg in msg.segments[1:]:
        handler = HANDLERS.get(seg.name)
        if handler is not None:
            failure = None
            try:
                handler(ctx, seg, st)
            except DATA_SHAPE_ERRORS as exc:
                failure = type(exc).__name__
            if failure is not None:
                # Raised outside the except block: neither cause nor context carries the
                # original exception, whose text may quote field values.
                raise TransformError(
                    f"cannot map segment {seg.name} ({failure})",
                    locations=[f"{seg.name} (segment {seg.index + 1})"],
                ) from None
            if seg.name in ("PID", "SCH", "AIS", "AIG", "AIL", "AIP") and st.appointment is not None:
                _appointment_patient(ctx, st)
    _close_order(ctx, st)
    _add_awaiting_patient(ctx, st)
    _complete_appointment(st)
    for doc, txa in st.documents:
        _finish_document(doc, txa, ctx)
    if header is not None and st.focus:
        seen: list[Json] = []
        for ref in st.focus:
            if ref not in seen:
                seen.append(ref)
        header["focus"] = seen
    for pending in st.pending_targets:
        if pending.pop("_pending_target", False):
            pending["target"] = [header_ref] if header_ref else list(st.focus[:1]) or [{"display": "message"}]
    bundle = ctx.bundle(message_resource_id("Bundle", ctx.scope, ctx.control_id, msg.msh.get(7)))
    ts = dt.instant(msg.msh.get(7), ctx.default_tz)
    if ts:
        bundle["timestamp"] = ts
    if ctx.control_id:
        ident: Json = {"value": ctx.control_id}
        if ctx.sender_system:
            ident["system"] = ctx.sender_system
        bundle["identifier"] = ident
    return bundle


__all__ = ["HANDLERS", "RESULT_FAMILIES", "convert_message"]
