"""Declared segment field maps (the IG's "segment maps") and the engine that applies them.

Each :class:`FieldMap` row says: field ``SEG-n`` goes to ``path`` of the resource built from the
segment, through the IG datatype map ``dt`` and, for codes, the IG concept map ``vocab``. The
coverage report (``python -m pyheart.transformers.hl7v2_fhir.coverage``) reads these rows and
compares them with the IG CSVs.

Path syntax: ``a.b`` sets a (nested) element from the first repetition; ``a[]`` appends one item
per repetition. With ``key`` the value goes into ``{**fixed, key: value}`` (e.g. an extension
``{"url": ..., "valueString": value}`` or a participant ``{"type": ..., "individual": value}``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from pyheart.broker.hl7v2 import Segment, Value
from pyheart.transformers.hl7v2_fhir.context import Context
from pyheart.transformers.hl7v2_fhir.datatypes import (
    DATATYPES,
    ISO639_2,
    REPEATING,
    V2_CS,
    coding,
    lookup,
    shared_inner,
    shared_raw,
)

Json = dict[str, Any]

_PT = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
_SD = "http://hl7.org/fhir/StructureDefinition/"


class FieldMap(NamedTuple):
    """One field -> element row."""

    segment: str
    field: int
    resource: str
    path: str
    dt: str
    vocab: str | None = None
    key: str | None = None
    fixed: Json | None = None
    when: Callable[[Segment], bool] | None = None


def _participant(code: str, display: str) -> Json:
    return {"type": [{"coding": [{"system": _PT, "code": code, "display": display}], "text": display}]}


def _ident_type(code: str, display: str | None = None) -> Json:
    c: Json = {"system": V2_CS + "0203", "code": code}
    if display:
        c["display"] = display
    return {"type": {"coding": [c]}}


def _ext(url: str) -> Json:
    return {"url": url}


def _empty(seg: str, n: int) -> Callable[[Segment], bool]:
    return lambda s: not s.raw(n) or s.raw(n) == '""'


F = FieldMap
PID: tuple[FieldMap, ...] = (
    F("PID", 2, "Patient", "identifier[]", "CX[Identifier]"),
    F("PID", 3, "Patient", "identifier[]", "CX[Identifier]"),
    F("PID", 4, "Patient", "identifier[]", "CX[Identifier]"),
    F("PID", 5, "Patient", "name[]", "XPN[HumanName]"),
    F(
        "PID",
        6,
        "Patient",
        "extension[]",
        "XPN[string]",
        key="valueString",
        fixed=_ext(_SD + "patient-mothersMaidenName"),
    ),
    F("PID", 7, "Patient", "birthDate", "DTM[date]"),
    F("PID", 8, "Patient", "gender", "CWE[code]", "AdministrativeSex"),
    F("PID", 9, "Patient", "name[]", "XPN[HumanName]"),
    F("PID", 11, "Patient", "address[]", "XAD[Address]"),
    F("PID", 13, "Patient", "telecom[]", "XTN[ContactPoint-home]"),
    F("PID", 14, "Patient", "telecom[]", "XTN[ContactPoint-work]"),
    F(
        "PID",
        15,
        "Patient",
        "communication[]",
        "CWE[CodeableConcept-Languages]",
        "PrimaryLanguage",
        key="language",
        fixed={"preferred": True},
    ),
    F("PID", 16, "Patient", "maritalStatus", "CWE[CodeableConcept]", "MaritalStatus"),
    F(
        "PID",
        17,
        "Patient",
        "extension[]",
        "CWE[CodeableConcept]",
        "Religion",
        key="valueCodeableConcept",
        fixed=_ext(_SD + "patient-religion"),
    ),
    F(
        "PID",
        19,
        "Patient",
        "identifier[]",
        "ST[Identifier]",
        fixed={"system": "http://hl7.org/fhir/sid/us-ssn", **_ident_type("SS", "Social Security number")},
    ),
    F(
        "PID",
        20,
        "Patient",
        "identifier[]",
        "DLN[Identifier]",
    ),
    F(
        "PID",
        23,
        "Patient",
        "extension[]",
        "ST[Address]",
        key="valueAddress",
        fixed=_ext(_SD + "patient-birthPlace"),
    ),
    F("PID", 24, "Patient", "multipleBirthBoolean", "ID[boolean]", when=_empty("PID", 25)),
    F("PID", 25, "Patient", "multipleBirthInteger", "NM[integer]"),
    F(
        "PID",
        26,
        "Patient",
        "extension[]",
        "CWE[Extension-code]",
        key="extension",
        fixed=_ext(_SD + "patient-citizenship"),
    ),
    F(
        "PID",
        28,
        "Patient",
        "extension[]",
        "CWE[Extension-code]",
        key="extension",
        fixed=_ext(_SD + "patient-nationality"),
    ),
    F("PID", 29, "Patient", "deceasedDateTime", "DTM[dateTime]"),
    F("PID", 30, "Patient", "deceasedBoolean", "ID[boolean]", when=_empty("PID", 29)),
    F("PID", 33, "Patient", "meta.lastUpdated", "DTM[instant]"),
    F("PID", 40, "Patient", "telecom[]", "XTN[ContactPoint]"),
    F(
        "PID",
        35,
        "Patient",
        "extension[]",
        "CWE[Extension-species]",
        key="extension",
        fixed=_ext(_SD + "patient-animal"),
    ),
)

#: IG ``PV1[Patient]``.
PV1_PATIENT: tuple[FieldMap, ...] = (
    F(
        "PV1",
        16,
        "Patient",
        "extension[]",
        "CWE[CodeableConcept]",
        "VIPIndicator",
        key="valueCodeableConcept",
        fixed=_ext(_SD + "patient-importance"),
    ),
)

PD1: tuple[FieldMap, ...] = (
    F("PD1", 3, "Patient", "generalPractitioner[]", "XON[Organization]"),
    F("PD1", 4, "Patient", "generalPractitioner[]", "XCN[Practitioner]"),
    F(
        "PD1",
        6,
        "Patient",
        "extension[]",
        "CWE[CodeableConcept]",
        key="valueCodeableConcept",
        fixed=_ext(_SD + "patient-disability"),
    ),
    F(
        "PD1",
        14,
        "Patient",
        "extension[]",
        "XON[string]",
        key="valueString",
        fixed=_ext(_SD + "patient-congregation"),
    ),
)

NK1: tuple[FieldMap, ...] = (
    F("NK1", 2, "RelatedPerson", "name[]", "XPN[HumanName]"),
    F("NK1", 3, "RelatedPerson", "relationship[]", "CWE[CodeableConcept]", "Relationship"),
    F("NK1", 4, "RelatedPerson", "address[]", "XAD[Address]"),
    F("NK1", 5, "RelatedPerson", "telecom[]", "XTN[ContactPoint]"),
    F("NK1", 6, "RelatedPerson", "telecom[]", "XTN[ContactPoint-work]"),
    F("NK1", 7, "RelatedPerson", "relationship[]", "CWE[CodeableConcept]", "ContactRole"),
    F("NK1", 8, "RelatedPerson", "period.start", "DTM[dateTime]"),
    F("NK1", 9, "RelatedPerson", "period.end", "DTM[dateTime]"),
    F("NK1", 12, "RelatedPerson", "identifier[]", "CX[Identifier]"),
    F("NK1", 15, "RelatedPerson", "gender", "CWE[code]", "AdministrativeSex"),
    F("NK1", 16, "RelatedPerson", "birthDate", "DTM[date]"),
    F(
        "NK1",
        20,
        "RelatedPerson",
        "communication[]",
        "CWE[CodeableConcept-Languages]",
        "PrimaryLanguage",
        key="language",
        # The next of kin's primary language, as PID-15 is the patient's.
        fixed={"preferred": True},
    ),
    F("NK1", 30, "RelatedPerson", "name[]", "XPN[HumanName]"),
    F("NK1", 31, "RelatedPerson", "telecom[]", "XTN[ContactPoint]"),
    F("NK1", 32, "RelatedPerson", "address[]", "XAD[Address]"),
    F("NK1", 33, "RelatedPerson", "identifier[]", "CX[Identifier]"),
    F(
        "NK1",
        37,
        "RelatedPerson",
        "identifier[]",
        "ST[Identifier]",
        fixed={"system": "http://hl7.org/fhir/sid/us-ssn", **_ident_type("SS")},
    ),
    F("NK1", 40, "RelatedPerson", "telecom[]", "XTN[ContactPoint]"),
    F("NK1", 41, "RelatedPerson", "telecom[]", "XTN[ContactPoint]"),
)

#: IG ``NK1[Patient]``: the same next of kin as a Patient.contact (paths relative to the contact).
NK1_CONTACT: tuple[FieldMap, ...] = (
    F("NK1", 2, "Patient.contact", "name", "XPN[HumanName]"),
    F("NK1", 3, "Patient.contact", "relationship[]", "CWE[CodeableConcept]", "Relationship"),
    F("NK1", 4, "Patient.contact", "address", "XAD[Address]"),
    F("NK1", 5, "Patient.contact", "telecom[]", "XTN[ContactPoint]"),
    F("NK1", 6, "Patient.contact", "telecom[]", "XTN[ContactPoint-work]"),
    F("NK1", 7, "Patient.contact", "relationship[]", "CWE[CodeableConcept]", "ContactRole"),
    F("NK1", 8, "Patient.contact", "period.start", "DTM[dateTime]"),
    F("NK1", 9, "Patient.contact", "period.end", "DTM[dateTime]"),
    F("NK1", 13, "Patient.contact", "organization", "XON[Organization]"),
    F("NK1", 15, "Patient.contact", "gender", "CWE[code]", "AdministrativeSex"),
    F("NK1", 40, "Patient.contact", "telecom[]", "XTN[ContactPoint]"),
    F("NK1", 41, "Patient.contact", "telecom[]", "XTN[ContactPoint]"),
)

#: CTD (no IG map; FHIR-Converter's): the contact person of the order or patient, as a
#: Patient.contact in their contact role (table 0131, Patient.contact.relationship's own table).
CTD_CONTACT: tuple[FieldMap, ...] = (
    F("CTD", 1, "Patient.contact", "relationship[]", "CWE[CodeableConcept]", "ContactRole"),
    F("CTD", 2, "Patient.contact", "name", "XPN[HumanName]"),
    F("CTD", 3, "Patient.contact", "address", "XAD[Address]"),
    F("CTD", 5, "Patient.contact", "telecom[]", "XTN[ContactPoint]"),
)

PV1: tuple[FieldMap, ...] = (
    F("PV1", 2, "Encounter", "class", "CWE[Coding]", "PatientClass[EncounterClass]"),
    F("PV1", 3, "Encounter", "location[]", "PL[Location]", key="location", fixed={"status": "active"}),
    F("PV1", 4, "Encounter", "type[]", "CWE[CodeableConcept]", "AdmissionType"),
    F("PV1", 5, "Encounter", "hospitalization.preAdmissionIdentifier", "CX[Identifier]"),
    F("PV1", 6, "Encounter", "location[]", "PL[Location]", key="location", fixed={"status": "completed"}),
    F(
        "PV1",
        7,
        "Encounter",
        "participant[]",
        "XCN[Practitioner]",
        key="individual",
        fixed=_participant("ATND", "attender"),
    ),
    F(
        "PV1",
        8,
        "Encounter",
        "participant[]",
        "XCN[Practitioner]",
        key="individual",
        fixed=_participant("REF", "referrer"),
    ),
    F(
        "PV1",
        9,
        "Encounter",
        "participant[]",
        "XCN[Practitioner]",
        key="individual",
        fixed=_participant("CON", "consultant"),
    ),
    F("PV1", 10, "Encounter", "serviceType", "CWE[CodeableConcept]", "HospitalService"),
    F(
        "PV1",
        11,
        "Encounter",
        "location[]",
        "PL[Location]",
        key="location",
        fixed={
            "status": "active",
            "extension": [
                {
                    "url": _SD + "subject-locationClassification",
                    "valueCodeableConcept": {
                        "coding": [
                            {"system": "http://hl7.org/fhir/ValueSet/subject-location", "code": "temporary"}
                        ]
                    },
                }
            ],
        },
    ),
    F("PV1", 13, "Encounter", "hospitalization.reAdmission", "CWE[CodeableConcept]", "ReadmissionIndicator"),
    F("PV1", 14, "Encounter", "hospitalization.admitSource", "CWE[CodeableConcept]"),
    F(
        "PV1",
        15,
        "Encounter",
        "hospitalization.specialArrangement[]",
        "CWE[CodeableConcept]",
        "AmbulatoryStatus",
    ),
    F("PV1", 16, "Encounter", "hospitalization.specialCourtesy[]", "CWE[CodeableConcept]", "VIPIndicator"),
    F(
        "PV1",
        17,
        "Encounter",
        "participant[]",
        "XCN[Practitioner]",
        key="individual",
        fixed=_participant("ADM", "admitter"),
    ),
    F(
        "PV1",
        19,
        "Encounter",
        "identifier[]",
        "CX[Identifier]",
        fixed={"type": {"coding": [{"system": V2_CS + "0203", "code": "VN"}], "text": "visit number"}},
    ),
    F(
        "PV1",
        36,
        "Encounter",
        "hospitalization.dischargeDisposition",
        "CWE[CodeableConcept]",
        "DischargeDisposition",
    ),
    F("PV1", 38, "Encounter", "hospitalization.dietPreference[]", "CWE[CodeableConcept]", "DietType"),
    F("PV1", 42, "Encounter", "location[]", "PL[Location]", key="location", fixed={"status": "reserved"}),
    # PV1-43 prior temporary location: the IG maps it only to the R5 EncounterHistory backport
    # (PV1[Basic-EncounterHistory]: a completed, temporary location); R4 keeps that location
    # history in Encounter.location.
    F(
        "PV1",
        43,
        "Encounter",
        "location[]",
        "PL[Location]",
        key="location",
        fixed={
            "status": "completed",
            "extension": [
                {
                    "url": _SD + "subject-locationClassification",
                    "valueCodeableConcept": {
                        "coding": [
                            {"system": "http://hl7.org/fhir/ValueSet/subject-location", "code": "temporary"}
                        ]
                    },
                }
            ],
        },
    ),
    F("PV1", 44, "Encounter", "period.start", "DTM[dateTime]"),
    F("PV1", 45, "Encounter", "period.end", "DTM[dateTime]"),
    F("PV1", 50, "Encounter", "identifier[]", "CX[Identifier]"),
    F(
        "PV1",
        52,
        "Encounter",
        "participant[]",
        "XCN[Practitioner]",
        key="individual",
        fixed=_participant("PART", "Participation"),
    ),
)

PV2: tuple[FieldMap, ...] = (
    F("PV2", 1, "Encounter", "location[]", "PL[Location]", key="location", fixed={"status": "planned"}),
    F("PV2", 3, "Encounter", "reasonCode[]", "CWE[CodeableConcept]"),
    F("PV2", 11, "Encounter", "length", "NM[Quantity-LengthOfStay]"),
    F(
        "PV2",
        13,
        "Encounter",
        "participant[]",
        "XCN[Practitioner]",
        key="individual",
        fixed=_participant("REF", "referrer"),
    ),
    F("PV2", 25, "Encounter", "priority", "CWE[CodeableConcept]", "EncounterPriority"),
    F(
        "PV2",
        8,
        "Encounter",
        "extension[]",
        "DTM[dateTime]",
        key="valueDateTime",
        fixed=_ext("http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.plannedStartDate"),
    ),
    F(
        "PV2",
        9,
        "Encounter",
        "extension[]",
        "DTM[dateTime]",
        key="valueDateTime",
        fixed=_ext("http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.plannedEndDate"),
    ),
    F(
        "PV2",
        38,
        "Encounter",
        "extension[]",
        "CWE[Coding]",
        "ModeOfArrivalCode",
        key="valueCoding",
        fixed=_ext(_SD + "encounter-modeOfArrival"),
    ),
    F("PV2", 22, "Encounter", "meta.security[]", "ID[Coding-VisitProtection]"),
)

_CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"


def _visit_protection(v: Any, ctx: Context, vocab: str | None) -> Any:
    """PV2-22 (visit protection indicator) -> a security label of the Encounter (IG meta.security):
    Y (protected) is restricted confidentiality, N normal. The IG's Yes/No concept map would give a
    special-values true/false, which is no security label."""
    code = v.get(1).upper()
    if code == "Y":
        return {"system": _CONFIDENTIALITY, "code": "R", "display": "restricted"}
    if code == "N":
        return {"system": _CONFIDENTIALITY, "code": "N", "display": "normal"}
    return None


DATATYPES["ID[Coding-VisitProtection]"] = _visit_protection

AL1: tuple[FieldMap, ...] = (
    F("AL1", 2, "AllergyIntolerance", "category[]", "CWE[code]", "AllergenType[AllergyIntoleranceCategory]"),
    F("AL1", 2, "AllergyIntolerance", "type", "CWE[code]", "AllergyType"),
    F("AL1", 3, "AllergyIntolerance", "code", "CWE[CodeableConcept]"),
    F(
        "AL1",
        4,
        "AllergyIntolerance",
        "criticality",
        "CWE[code]",
        "AllergySeverity[AllergyIntolerance.criticality]",
    ),
    F("AL1", 5, "AllergyIntolerance", "reaction[]", "ST[CodeableConcept]", key="manifestation-1"),
    F("AL1", 6, "AllergyIntolerance", "onsetDateTime", "DTM[dateTime]"),
)

IAM: tuple[FieldMap, ...] = (
    F("IAM", 2, "AllergyIntolerance", "category[]", "CWE[code]", "AllergenType[AllergyIntoleranceCategory]"),
    F("IAM", 2, "AllergyIntolerance", "type", "CWE[code]", "AllergyType"),
    F("IAM", 3, "AllergyIntolerance", "code", "CWE[CodeableConcept]"),
    F(
        "IAM",
        4,
        "AllergyIntolerance",
        "criticality",
        "CWE[code]",
        "AllergySeverity[AllergyIntolerance.criticality]",
    ),
    F("IAM", 5, "AllergyIntolerance", "reaction[]", "ST[CodeableConcept]", key="manifestation-1"),
    F("IAM", 7, "AllergyIntolerance", "identifier[]", "EI[Identifier-Extension]"),
    F("IAM", 11, "AllergyIntolerance", "onsetDateTime", "DTM[dateTime]"),
    F("IAM", 12, "AllergyIntolerance", "onsetString", "ST[string]", when=_empty("IAM", 11)),
    F("IAM", 13, "AllergyIntolerance", "recordedDate", "DTM[dateTime]"),
    F("IAM", 17, "AllergyIntolerance", "clinicalStatus", "CWE[CodeableConcept]"),
)

DG1: tuple[FieldMap, ...] = (
    F("DG1", 3, "Condition", "code", "CWE[CodeableConcept]"),
    F("DG1", 5, "Condition", "onsetDateTime", "DTM[dateTime]"),
    F("DG1", 16, "Condition", "asserter", "XCN[Practitioner]"),
    F("DG1", 19, "Condition", "recordedDate", "DTM[dateTime]"),
    F("DG1", 20, "Condition", "identifier[]", "EI[Identifier-Extension]"),
)

PR1: tuple[FieldMap, ...] = (
    F("PR1", 3, "Procedure", "code", "CWE[CodeableConcept]"),
    F("PR1", 5, "Procedure", "performedDateTime", "DTM[dateTime]"),
    F("PR1", 6, "Procedure", "category", "CWE[CodeableConcept]"),
    F(
        "PR1",
        8,
        "Procedure",
        "performer[]",
        "XCN[Practitioner]",
        key="actor",
        fixed={
            "function": {
                "coding": [
                    {"system": "http://snomed.info/sct", "code": "88189002", "display": "Anesthesiologist"}
                ],
                "text": "Anesthesiologist",
            }
        },
    ),
    F(
        "PR1",
        11,
        "Procedure",
        "performer[]",
        "XCN[Practitioner]",
        key="actor",
        fixed={
            "function": {
                "coding": [{"system": "http://snomed.info/sct", "code": "304292004", "display": "Surgeon"}],
                "text": "Surgeon",
            }
        },
    ),
    F("PR1", 12, "Procedure", "performer[]", "XCN[Practitioner]", key="actor"),
    F("PR1", 15, "Procedure", "reasonCode[]", "CWE[CodeableConcept]"),
    F("PR1", 19, "Procedure", "identifier[]", "EI[Identifier-Extension]"),
    F("PR1", 23, "Procedure", "location", "PL[Location]"),
)

IN1: tuple[FieldMap, ...] = (
    F("IN1", 2, "Coverage", "identifier[]", "CWE[Identifier]"),
    F("IN1", 4, "Coverage", "payor[]", "XON[Organization]"),
    F("IN1", 11, "Coverage", "policyHolder", "XON[Organization]"),
    F("IN1", 12, "Coverage", "period.start", "DTM[dateTime]"),
    F("IN1", 13, "Coverage", "period.end", "DTM[dateTime]"),
    F("IN1", 15, "Coverage", "type", "CWE[CodeableConcept]"),
    F("IN1", 17, "Coverage", "relationship", "CWE[CodeableConcept]", "Relationship"),
    F("IN1", 36, "Coverage", "identifier[]", "ST[Identifier]", fixed=_ident_type("MB", "Member Number")),
)

#: IN1-16..19/43/49: the insured person, Coverage.subscriber (IG IN1[Coverage] -> RelatedPerson).
IN1_INSURED: tuple[FieldMap, ...] = (
    F("IN1", 16, "RelatedPerson", "name[]", "XPN[HumanName]"),
    F("IN1", 17, "RelatedPerson", "relationship[]", "CWE[CodeableConcept]", "Relationship"),
    F("IN1", 18, "RelatedPerson", "birthDate", "DTM[date]"),
    F("IN1", 19, "RelatedPerson", "address[]", "XAD[Address]"),
    F("IN1", 43, "RelatedPerson", "gender", "CWE[code]", "AdministrativeSex"),
    F("IN1", 49, "RelatedPerson", "identifier[]", "CX[Identifier]"),
)

_SSN = {"system": "http://hl7.org/fhir/sid/us-ssn", **_ident_type("SS", "Social Security number")}

#: IN2 (no IG table): the Medicare, Medicaid and patient member numbers identify the Coverage.
IN2: tuple[FieldMap, ...] = (
    F(
        "IN2",
        6,
        "Coverage",
        "identifier[]",
        "ST[Identifier]",
        fixed={
            "system": "http://hl7.org/fhir/sid/us-medicare",
            **_ident_type("MC", "Patient's Medicare number"),
        },
    ),
    F(
        "IN2",
        8,
        "Coverage",
        "identifier[]",
        "ST[Identifier]",
        fixed=_ident_type("MA", "Patient Medicaid number"),
    ),
    F("IN2", 61, "Coverage", "identifier[]", "CX[Identifier]"),
)

#: IN2 fields about the insured person (Coverage.subscriber when it is a RelatedPerson).
IN2_INSURED: tuple[FieldMap, ...] = (
    F("IN2", 1, "RelatedPerson", "identifier[]", "CX[Identifier]"),
    F("IN2", 2, "RelatedPerson", "identifier[]", "ST[Identifier]", fixed=_SSN),
    F(
        "IN2",
        34,
        "RelatedPerson",
        "communication[]",
        "CWE[CodeableConcept-Language]",
        "PrimaryLanguage",
        key="language",
        fixed={"preferred": True},
    ),
    F("IN2", 63, "RelatedPerson", "telecom[]", "XTN[ContactPoint]", fixed={"use": "home"}),
)


def _not_dependent(seg: Segment) -> bool:
    """IN2-11 (dependent of military recipient, table 0342) does not say the patient is one."""
    return seg.get(11).upper() in ("", "N")


#: IN2 (no IG table) fields that identify the patient, whoever the insured is: the patient's
#: Medicare (IN2-6) and Medicaid (IN2-8) numbers and member number (IN2-61) are Patient
#: identifiers (their table 0203 types are the patient's), the military id (IN2-10) too unless
#: IN2-11 says the patient is a military dependent (then it is the sponsor's). IN2-7 (Medicaid
#: case name) is the head of household's, not necessarily the patient's: not mapped.
IN2_PATIENT: tuple[FieldMap, ...] = (
    F(
        "IN2",
        6,
        "Patient",
        "identifier[]",
        "ST[Identifier]",
        fixed={
            "system": "http://hl7.org/fhir/sid/us-medicare",
            **_ident_type("MC", "Patient's Medicare number"),
        },
    ),
    F(
        "IN2",
        8,
        "Patient",
        "identifier[]",
        "ST[Identifier]",
        fixed=_ident_type("MA", "Patient Medicaid number"),
    ),
    F(
        "IN2",
        10,
        "Patient",
        "identifier[]",
        "ST[Identifier]",
        fixed=_ident_type("MI", "Military ID number"),
        when=_not_dependent,
    ),
    F("IN2", 61, "Patient", "identifier[]", "CX[Identifier]"),
)

GT1: tuple[FieldMap, ...] = (
    F("GT1", 2, "RelatedPerson", "identifier[]", "CX[Identifier]"),
    F(
        "GT1",
        12,
        "RelatedPerson",
        "identifier[]",
        "ST[Identifier]",
        fixed={"system": "http://hl7.org/fhir/sid/us-ssn", **_ident_type("SS", "Social Security number")},
    ),
    F("GT1", 13, "RelatedPerson", "period.start", "DTM[dateTime]"),
    F("GT1", 14, "RelatedPerson", "period.end", "DTM[dateTime]"),
    F(
        "GT1",
        36,
        "RelatedPerson",
        "communication[]",
        "CWE[CodeableConcept-Language]",
        "PrimaryLanguage",
        key="language",
    ),
    F("GT1", 3, "RelatedPerson", "name[]", "XPN[HumanName]"),
    F("GT1", 5, "RelatedPerson", "address[]", "XAD[Address]"),
    F("GT1", 6, "RelatedPerson", "telecom[]", "XTN[ContactPoint]", fixed={"use": "home"}),
    F("GT1", 7, "RelatedPerson", "telecom[]", "XTN[ContactPoint]", fixed={"use": "work"}),
    F("GT1", 8, "RelatedPerson", "birthDate", "DTM[date]"),
    F("GT1", 9, "RelatedPerson", "gender", "CWE[code]", "AdministrativeSex"),
    F("GT1", 11, "RelatedPerson", "relationship[]", "CWE[CodeableConcept]", "Relationship"),
    F("GT1", 19, "RelatedPerson", "identifier[]", "CX[Identifier]"),
    F("GT1", 29, "RelatedPerson", "identifier[]", "CX[Identifier]"),
)

#: GT1 (no IG table) when the guarantor is the patient (GT1-11 self): the guarantor's person
#: identifiers, name, address and phones are the Patient's (as the GT1 rows above are the
#: guarantor RelatedPerson's otherwise).
GT1_PATIENT: tuple[FieldMap, ...] = (
    F("GT1", 2, "Patient", "identifier[]", "CX[Identifier]"),
    F("GT1", 3, "Patient", "name[]", "XPN[HumanName]"),
    F("GT1", 5, "Patient", "address[]", "XAD[Address]"),
    F("GT1", 6, "Patient", "telecom[]", "XTN[ContactPoint]", fixed={"use": "home"}),
    F("GT1", 7, "Patient", "telecom[]", "XTN[ContactPoint]", fixed={"use": "work"}),
    F("GT1", 12, "Patient", "identifier[]", "ST[Identifier]", fixed=_SSN),
    F("GT1", 19, "Patient", "identifier[]", "CX[Identifier]"),
)

#: The self-guarantor's spouse (GT1-4), a Patient.contact (paths relative to the contact).
GT1_SPOUSE: tuple[FieldMap, ...] = (F("GT1", 4, "Patient.contact", "name", "XPN[HumanName]"),)

#: The self-guarantor's employer (GT1-16 name, 17 address, 18 phone, 51 organisation; GT1-31/32
#: the employment period), a Patient.contact.
GT1_EMPLOYER: tuple[FieldMap, ...] = (
    F("GT1", 16, "Patient.contact", "name", "XPN[HumanName]"),
    F("GT1", 51, "Patient.contact", "organization", "XON[Organization]"),
    F("GT1", 17, "Patient.contact", "address", "XAD[Address]"),
    F("GT1", 18, "Patient.contact", "telecom[]", "XTN[ContactPoint]"),
    F("GT1", 31, "Patient.contact", "period.start", "DTM[dateTime]"),
    F("GT1", 32, "Patient.contact", "period.end", "DTM[dateTime]"),
)

#: The self-guarantor's contact person (GT1-45 name, GT1-46 phones), a Patient.contact.
GT1_CONTACT_PERSON: tuple[FieldMap, ...] = (
    F("GT1", 45, "Patient.contact", "name", "XPN[HumanName]"),
    F("GT1", 46, "Patient.contact", "telecom[]", "XTN[ContactPoint]"),
)

_PLAC = _ident_type("PLAC", "Placer Identifier")
_FILL = _ident_type("FILL", "Filler Identifier")


def _new_order(seg: Segment) -> bool:
    return seg.raw(1) == "NW"


ORC_SR: tuple[FieldMap, ...] = (
    F(
        "ORC",
        1,
        "ServiceRequest",
        "status",
        "ID[code]",
        "OrderControlCode[ServiceRequest.status]",
        when=_empty("ORC", 5),
    ),
    F("ORC", 2, "ServiceRequest", "identifier[]", "EI[Identifier-Extension]", fixed=_PLAC),
    F("ORC", 3, "ServiceRequest", "identifier[]", "EI[Identifier-Extension]", fixed=_FILL),
    F("ORC", 4, "ServiceRequest", "requisition", "EI[Identifier-Extension]", fixed=_ident_type("PGN")),
    F("ORC", 5, "ServiceRequest", "status", "ID[code]", "OrderStatus"),
    # IG ORC-9: authoredOn only for a new order (ORC-1 NW); otherwise it dates a later event.
    F("ORC", 9, "ServiceRequest", "authoredOn", "DTM[dateTime]", when=_new_order),
    F("ORC", 12, "ServiceRequest", "requester", "XCN[Practitioner]"),
    F(
        "ORC",
        14,
        "ServiceRequest",
        "extension[]",
        "XTN[ContactPoint]",
        key="valueContactPoint",
        fixed=_ext(_SD + "servicerequest-order-callback-phone-number"),
    ),
    F(
        "ORC",
        16,
        "ServiceRequest",
        "extension[]",
        "CWE[CodeableConcept]",
        key="valueCodeableConcept",
        fixed=_ext(_SD + "request-statusReason"),
        when=_empty("ORC", 5),
    ),
    F("ORC", 28, "ServiceRequest", "meta.security[]", "CWE[Coding]", "ConfidentialityCode"),
    F("ORC", 29, "ServiceRequest", "locationCode[]", "CWE[CodeableConcept]", "OrderType"),
    F("ORC", 33, "ServiceRequest", "identifier[]", "CX[Identifier]", fixed=_PLAC),
)

#: IG ``ORC[DiagnosticReport]``: the order numbers (a report's OBR numbers come first) and the
#: order's confidentiality.
ORC_DR: tuple[FieldMap, ...] = (
    F("ORC", 2, "DiagnosticReport", "identifier[]", "EI[Identifier-Extension]", fixed=_PLAC),
    F("ORC", 3, "DiagnosticReport", "identifier[]", "EI[Identifier-Extension]", fixed=_FILL),
    F(
        "ORC",
        16,
        "DiagnosticReport",
        "extension[]",
        "CWE[CodeableConcept]",
        key="valueCodeableConcept",
        fixed=_ext(_SD + "event-statusReason"),
    ),
    F("ORC", 28, "DiagnosticReport", "meta.security[]", "CWE[Coding]", "ConfidentialityCode"),
    F("ORC", 4, "DiagnosticReport", "identifier[]", "EIP[Identifier-PlacerGroup]"),
    F("ORC", 4, "DiagnosticReport", "identifier[]", "EIP[Identifier-FillerGroup]"),
)

OBR_SR: tuple[FieldMap, ...] = (
    F("OBR", 2, "ServiceRequest", "identifier[]", "EI[Identifier-Extension]", fixed=_PLAC),
    F("OBR", 3, "ServiceRequest", "identifier[]", "EI[Identifier-Extension]", fixed=_FILL),
    F("OBR", 4, "ServiceRequest", "code", "CWE[CodeableConcept]"),
    F("OBR", 5, "ServiceRequest", "priority", "ID[code]", "ExtendedPriorityCodes"),
    F("OBR", 6, "ServiceRequest", "occurrenceDateTime", "DTM[dateTime]"),
    F("OBR", 16, "ServiceRequest", "requester", "XCN[Practitioner]"),
    F("OBR", 31, "ServiceRequest", "reasonCode[]", "CWE[CodeableConcept]"),
    F("OBR", 46, "ServiceRequest", "orderDetail[]", "CWE[CodeableConcept]"),
    F("OBR", 47, "ServiceRequest", "orderDetail[]", "CWE[CodeableConcept]"),
    F("OBR", 53, "ServiceRequest", "identifier[]", "CX[Identifier]", fixed=_PLAC),
)

OBR_DR: tuple[FieldMap, ...] = (
    F("OBR", 2, "DiagnosticReport", "identifier[]", "EI[Identifier-Extension]", fixed=_PLAC),
    F("OBR", 3, "DiagnosticReport", "identifier[]", "EI[Identifier-Extension]", fixed=_FILL),
    F("OBR", 4, "DiagnosticReport", "code", "CWE[CodeableConcept]"),
    F("OBR", 7, "DiagnosticReport", "effectiveDateTime", "DTM[dateTime]", when=_empty("OBR", 8)),
    F(
        "OBR",
        7,
        "DiagnosticReport",
        "effectivePeriod.start",
        "DTM[dateTime]",
        when=lambda s: not _empty("OBR", 8)(s),
    ),
    F("OBR", 8, "DiagnosticReport", "effectivePeriod.end", "DTM[dateTime]"),
    F("OBR", 22, "DiagnosticReport", "issued", "DTM[instant]"),
    F("OBR", 24, "DiagnosticReport", "category[]", "ID[CodeableConcept]", "DiagnosticServiceSectionID"),
    F("OBR", 25, "DiagnosticReport", "status", "ID[code]", "ResultStatus[Non-Queries]"),
    F("OBR", 32, "DiagnosticReport", "resultsInterpreter[]", "NDL[Practitioner]"),
    F("OBR", 34, "DiagnosticReport", "performer[]", "NDL[Practitioner]"),
    F("OBR", 35, "DiagnosticReport", "performer[]", "NDL[Practitioner]"),
)

#: IG ``OBR[Specimen]``: the specimen an OBR describes (messages without SPM carry it there).
OBR_SPECIMEN: tuple[FieldMap, ...] = (
    F("OBR", 7, "Specimen", "collection.collectedDateTime", "DTM[dateTime]", when=_empty("OBR", 8)),
    F(
        "OBR",
        7,
        "Specimen",
        "collection.collectedPeriod.start",
        "DTM[dateTime]",
        when=lambda s: not _empty("OBR", 8)(s),
    ),
    F("OBR", 8, "Specimen", "collection.collectedPeriod.end", "DTM[dateTime]"),
    F("OBR", 9, "Specimen", "collection.quantity", "CQ[Quantity]"),
    F("OBR", 10, "Specimen", "collection.collector", "XCN[Practitioner]"),
    F("OBR", 14, "Specimen", "receivedTime", "DTM[dateTime]"),
    F("OBR", 39, "Specimen", "note[]", "ST[string]", key="text"),
)

OBX: tuple[FieldMap, ...] = (
    F("OBX", 3, "Observation", "code", "CWE[CodeableConcept]"),
    F("OBX", 7, "Observation", "referenceRange[]", "ST[string]", key="text"),
    F("OBX", 8, "Observation", "interpretation[]", "CWE[CodeableConcept]", "InterpretationCodes"),
    F(
        "OBX",
        10,
        "Observation",
        "extension[]",
        "CWE[CodeableConcept]",
        key="valueCodeableConcept",
        fixed=_ext(_SD + "observation-nature-of-abnormal-test"),
    ),
    F("OBX", 11, "Observation", "status", "ID[code]", "ObservationResultStatusCodesInterpretation"),
    F("OBX", 14, "Observation", "effectiveDateTime", "DTM[dateTime]"),
    F("OBX", 15, "Observation", "performer[]", "CWE[Organization]"),
    F("OBX", 17, "Observation", "method", "CWE[CodeableConcept]"),
    F("OBX", 19, "Observation", "issued", "DTM[instant]"),
    F("OBX", 20, "Observation", "bodySite", "CWE[CodeableConcept]"),
    F("OBX", 21, "Observation", "identifier[]", "EI[Identifier-Extension]", fixed=_FILL),
    F("OBX", 23, "Observation", "performer[]", "XON[Organization]", when=_empty("OBX", 25)),
)

NTE: tuple[FieldMap, ...] = (F("NTE", 3, "*", "note[]", "FT[string]", key="text"),)

SPM: tuple[FieldMap, ...] = (
    F("SPM", 4, "Specimen", "type", "CWE[CodeableConcept]", "SpecimenType"),
    F("SPM", 7, "Specimen", "collection.method", "CWE[CodeableConcept]", "SpecimenCollectionMethod"),
    F("SPM", 8, "Specimen", "collection.bodySite", "CWE[CodeableConcept]"),
    F("SPM", 12, "Specimen", "collection.quantity", "CQ[Quantity]"),
    F("SPM", 14, "Specimen", "note[]", "ST[string]", key="text"),
    # SPM-15 handling code: no IG row; FHIR's specimen-specialHandling extension (HL7 table 0376).
    F(
        "SPM",
        15,
        "Specimen",
        "collection.extension[]",
        "CWE[CodeableConcept]",
        key="valueCodeableConcept",
        fixed=_ext(_SD + "specimen-specialHandling"),
    ),
    F("SPM", 18, "Specimen", "receivedTime", "DTM[dateTime]"),
    F("SPM", 24, "Specimen", "condition[]", "CWE[CodeableConcept]", "SpecimenCondition"),
    F("SPM", 20, "Specimen", "status", "ID[code]", "YesNoIndicator[AvailabilityStatus]"),
    F("SPM", 27, "Specimen", "container[]", "CWE[CodeableConcept]", key="type"),
    F(
        "SPM",
        6,
        "Specimen",
        "container[]",
        "CWE[CodeableConcept]",
        "AdditivePreservative",
        key="additiveCodeableConcept",
    ),
    F("SPM", 30, "Specimen", "accessionIdentifier", "CX[Identifier]"),
    F("SPM", 31, "Specimen", "identifier[]", "CX[Identifier]"),
    F("SPM", 32, "Specimen", "identifier[]", "EI[Identifier-Extension]"),
)

RXA: tuple[FieldMap, ...] = (
    F("RXA", 3, "Immunization", "occurrenceDateTime", "DTM[dateTime]"),
    F("RXA", 5, "Immunization", "vaccineCode", "CWE[CodeableConcept]"),
    F(
        "RXA",
        10,
        "Immunization",
        "performer[]",
        "XCN[Practitioner]",
        key="actor",
        fixed={
            "function": {
                "coding": [{"system": V2_CS + "0443", "code": "AP", "display": "Administering Provider"}]
            }
        },
    ),
    F("RXA", 15, "Immunization", "lotNumber", "ST[string]"),
    F("RXA", 16, "Immunization", "expirationDate", "DTM[date]"),
    F("RXA", 17, "Immunization", "manufacturer", "CWE[Organization]"),
    F("RXA", 18, "Immunization", "statusReason", "CWE[CodeableConcept]"),
    F("RXA", 19, "Immunization", "reasonCode[]", "CWE[CodeableConcept]"),
    F("RXA", 20, "Immunization", "status", "ID[code]", "CompletionStatus"),
    F("RXA", 22, "Immunization", "recorded", "DTM[dateTime]", when=lambda s: s.raw(21) == "A"),
    F("RXA", 27, "Immunization", "location", "PL[Location]"),
)

ORC_IMM: tuple[FieldMap, ...] = (
    F("ORC", 2, "Immunization", "identifier[]", "EI[Identifier-Extension]", fixed=_PLAC),
    F("ORC", 3, "Immunization", "identifier[]", "EI[Identifier-Extension]", fixed=_FILL),
    F("ORC", 28, "Immunization", "meta.security[]", "CWE[Coding]", "ConfidentialityCode"),
    F("ORC", 4, "Immunization", "identifier[]", "EIP[Identifier-PlacerGroup]"),
    F("ORC", 4, "Immunization", "identifier[]", "EIP[Identifier-FillerGroup]"),
    F("ORC", 9, "Immunization", "recorded", "DTM[dateTime]"),
    F(
        "ORC",
        12,
        "Immunization",
        "performer[]",
        "XCN[Practitioner]",
        key="actor",
        fixed={
            "function": {"coding": [{"system": V2_CS + "0443", "code": "OP", "display": "Ordering Provider"}]}
        },
    ),
)

RXR: tuple[FieldMap, ...] = (
    F("RXR", 1, "Immunization", "route", "CWE[CodeableConcept]", "RouteOfAdministration"),
    F("RXR", 2, "Immunization", "site", "CWE[CodeableConcept]", "BodyParts"),
)

ORC_MED: tuple[FieldMap, ...] = (
    F(
        "ORC",
        1,
        "MedicationRequest",
        "status",
        "ID[code]",
        "OrderControlCode[ServiceRequest.status]",
        when=_empty("ORC", 5),
    ),
    F("ORC", 2, "MedicationRequest", "identifier[]", "EI[Identifier-Extension]", fixed=_PLAC),
    F("ORC", 3, "MedicationRequest", "identifier[]", "EI[Identifier-Extension]", fixed=_FILL),
    F("ORC", 4, "MedicationRequest", "groupIdentifier", "EI[Identifier-Extension]"),
    F("ORC", 5, "MedicationRequest", "status", "ID[code]", "OrderStatus"),
    F("ORC", 9, "MedicationRequest", "authoredOn", "DTM[dateTime]", when=_new_order),
    F("ORC", 12, "MedicationRequest", "requester", "XCN[Practitioner]"),
)

RXO: tuple[FieldMap, ...] = (
    F("RXO", 1, "MedicationRequest", "medicationCodeableConcept", "CWE[CodeableConcept]"),
    F(
        "RXO",
        9,
        "MedicationRequest",
        "substitution.allowedCodeableConcept",
        "ID[CodeableConcept]",
        "AllowSubstitution",
    ),
    F("RXO", 11, "MedicationRequest", "dispenseRequest.quantity.value", "NM[decimal]"),
    F("RXO", 13, "MedicationRequest", "dispenseRequest.numberOfRepeatsAllowed", "NM[unsignedInt]"),
    F("RXO", 14, "MedicationRequest", "requester", "XCN[Practitioner]"),
    F("RXO", 20, "MedicationRequest", "reasonCode[]", "CWE[CodeableConcept]"),
    # RXO-32 dispensing pharmacy (no IG row): who is asked to dispense.
    F("RXO", 32, "MedicationRequest", "dispenseRequest.performer", "XON|CWE[Organization]"),
)

RXE: tuple[FieldMap, ...] = (
    F("RXE", 2, "MedicationRequest", "medicationCodeableConcept", "CWE[CodeableConcept]"),
    F("RXE", 10, "MedicationRequest", "dispenseRequest.quantity.value", "NM[decimal]"),
    F("RXE", 12, "MedicationRequest", "dispenseRequest.numberOfRepeatsAllowed", "NM[unsignedInt]"),
    F("RXE", 13, "MedicationRequest", "requester", "XCN[Practitioner]"),
    F("RXE", 15, "MedicationRequest", "identifier[]", "ST[Identifier]"),
    F("RXE", 21, "MedicationRequest", "note[]", "CWE[string]", key="text"),
    F("RXE", 27, "MedicationRequest", "reasonCode[]", "CWE[CodeableConcept]"),
    # RXE-40 dispensing pharmacy (a CWE since v2.6): who is asked to dispense.
    F("RXE", 40, "MedicationRequest", "dispenseRequest.performer", "CWE[Organization]"),
)

RXD: tuple[FieldMap, ...] = (
    F("RXD", 2, "MedicationDispense", "medicationCodeableConcept", "CWE[CodeableConcept]"),
    F("RXD", 3, "MedicationDispense", "whenHandedOver", "DTM[dateTime]"),
    F("RXD", 4, "MedicationDispense", "quantity.value", "NM[decimal]"),
    F("RXD", 9, "MedicationDispense", "note[]", "ST[string]", key="text"),
    F("RXD", 10, "MedicationDispense", "performer[]", "XCN[Practitioner]", key="actor"),
    F("RXD", 33, "MedicationDispense", "type", "CWE[CodeableConcept]"),
)

TXA: tuple[FieldMap, ...] = (
    F("TXA", 2, "DocumentReference", "type", "CWE[CodeableConcept]"),
    F("TXA", 6, "DocumentReference", "date", "DTM[instant]"),
    F("TXA", 9, "DocumentReference", "author[]", "XCN[Practitioner]"),
    F("TXA", 10, "DocumentReference", "authenticator", "XCN[Practitioner]"),
    F("TXA", 12, "DocumentReference", "masterIdentifier", "EI[Identifier-Extension]"),
    F("TXA", 16, "DocumentReference", "identifier[]", "ST[Identifier]"),
    F(
        "TXA",
        18,
        "DocumentReference",
        "securityLabel[]",
        "ID[CodeableConcept]",
        "DocumentConfidentialityStatus",
    ),
    F("TXA", 25, "DocumentReference", "description", "ST[string]"),
    # No IG rows: TXA-8 (edit date/time) is when the document last changed, as PID-33 is the
    # Patient's meta.lastUpdated; TXA-24 (folder assignment) files the document, its category.
    F("TXA", 8, "DocumentReference", "meta.lastUpdated", "DTM[instant]"),
    F("TXA", 24, "DocumentReference", "category[]", "CWE[CodeableConcept]"),
)

SCH: tuple[FieldMap, ...] = (
    F("SCH", 1, "Appointment", "identifier[]", "EI[Identifier-Extension]", fixed=_PLAC),
    F("SCH", 2, "Appointment", "identifier[]", "EI[Identifier-Extension]", fixed=_FILL),
    F("SCH", 7, "Appointment", "reasonCode[]", "CWE[CodeableConcept]", "AppointmentReasonCodes"),
    F("SCH", 8, "Appointment", "appointmentType", "CWE[CodeableConcept]", "AppointmentTypeCodes"),
    F("SCH", 9, "Appointment", "minutesDuration", "NM[positiveInt]"),
    F(
        "SCH",
        12,
        "Appointment",
        "participant[]",
        "XCN[Practitioner]",
        key="actor",
        fixed={"status": "accepted"},
    ),
    F(
        "SCH",
        16,
        "Appointment",
        "participant[]",
        "XCN[Practitioner]",
        key="actor",
        fixed={"status": "accepted"},
    ),
    F(
        "SCH",
        20,
        "Appointment",
        "participant[]",
        "XCN[Practitioner]",
        key="actor",
        fixed={"status": "accepted"},
    ),
    F("SCH", 25, "Appointment", "status", "CWE[code]", "FillerStatusCodes[Appointment]"),
)

#: IG ``SCH[ServiceRequest]`` (when SCH-26 or SCH-27 is valued): the order the appointment fulfils.
SCH_SR: tuple[FieldMap, ...] = (
    F("SCH", 26, "ServiceRequest", "identifier[]", "EI[Identifier-Extension]", fixed=_PLAC),
    F("SCH", 27, "ServiceRequest", "identifier[]", "EI[Identifier-Extension]", fixed=_FILL),
)

#: IG ``AIS[ServiceRequest]``: the service of each AIS, with the SCH's order data. AIS-3 is
#: also the code (the IG maps the same universal service identifier, OBR-4, to code).
AIS_SR: tuple[FieldMap, ...] = (
    F("AIS", 3, "ServiceRequest", "identifier[]", "CWE[Identifier]"),
    F("AIS", 3, "ServiceRequest", "code", "CWE[CodeableConcept]"),
    F("AIS", 11, "ServiceRequest", "identifier[]", "CWE[Identifier]"),
    F("AIS", 12, "ServiceRequest", "identifier[]", "CWE[Identifier]"),
)

AIS: tuple[FieldMap, ...] = (
    F("AIS", 3, "Appointment", "serviceType[]", "CWE[CodeableConcept]"),
    # IG AIS-10: the service's filler status is the Appointment's when SCH-25 gave none.
    F("AIS", 10, "Appointment", "status", "CWE[code]", "FillerStatusCodes[Appointment]"),
)
AIG: tuple[FieldMap, ...] = (
    F(
        "AIG",
        4,
        "Appointment",
        "participant[]",
        "CWE[CodeableConcept]",
        key="type-1",
        fixed={"status": "accepted"},
    ),
)
AIL: tuple[FieldMap, ...] = (
    F("AIL", 3, "Appointment", "participant[]", "PL[Location]", key="actor", fixed={"status": "accepted"}),
)
AIP: tuple[FieldMap, ...] = (
    F(
        "AIP",
        3,
        "Appointment",
        "participant[]",
        "XCN[Practitioner]",
        key="actor",
        fixed={"status": "accepted"},
    ),
)

#: RF1 (no IG table): the referral as a ServiceRequest (status, priority, dates in code).
RF1: tuple[FieldMap, ...] = (
    F("RF1", 3, "ServiceRequest", "category[]", "CWE[CodeableConcept]"),
    F("RF1", 5, "ServiceRequest", "locationCode[]", "CWE[CodeableConcept]"),
    F("RF1", 6, "ServiceRequest", "identifier[]", "EI[Identifier-Extension]"),
    F("RF1", 9, "ServiceRequest", "authoredOn", "DTM[dateTime]"),
    F("RF1", 10, "ServiceRequest", "reasonCode[]", "CWE[CodeableConcept]"),
    F("RF1", 11, "ServiceRequest", "identifier[]", "EI[Identifier-Extension]"),
    F("RF1", 19, "ServiceRequest", "performer[]", "XON[Organization]"),
    F("RF1", 20, "ServiceRequest", "performer[]", "XCN[Practitioner]"),
    F("RF1", 24, "ServiceRequest", "note[]", "ST[string]", key="text"),
)

#: AUT (no IG table): the authorization as a preauthorization ClaimResponse.
AUT: tuple[FieldMap, ...] = (
    F("AUT", 6, "ClaimResponse", "identifier[]", "EI[Identifier-Extension]"),
    F("AUT", 28, "ClaimResponse", "processNote[]", "ST[string]", key="text"),
)

#: INV (no IG table): the inventory item as a Substance (status and instance in code).
INV: tuple[FieldMap, ...] = (
    F("INV", 1, "Substance", "code", "CWE[CodeableConcept]"),
    F("INV", 3, "Substance", "category[]", "CWE[CodeableConcept]"),
    F("INV", 16, "Substance", "identifier[]", "CWE[Identifier]"),
    F("INV", 17, "Substance", "identifier[]", "ST[Identifier]"),
    F("INV", 18, "Substance", "identifier[]", "CWE[Identifier]"),
)

#: CTI (no IG table): the clinical trial an order belongs to, as a ResearchStudy.
CTI: tuple[FieldMap, ...] = (
    F("CTI", 1, "ResearchStudy", "identifier[]", "EI[Identifier-Extension]"),
    F("CTI", 2, "ResearchStudy", "phase", "CWE[CodeableConcept]"),
)

FT1: tuple[FieldMap, ...] = (
    F("FT1", 2, "ChargeItem", "identifier[]", "ST[Identifier]"),
    F("FT1", 4, "ChargeItem", "occurrenceDateTime", "DTM[dateTime]"),
    F("FT1", 7, "ChargeItem", "code", "CWE[CodeableConcept]"),
    F("FT1", 5, "ChargeItem", "enteredDate", "DTM[dateTime]"),
    F("FT1", 10, "ChargeItem", "quantity.value", "NM[decimal]"),
    F("FT1", 19, "ChargeItem", "reason[]", "CWE[CodeableConcept]"),
    F("FT1", 20, "ChargeItem", "performer[]", "XCN[Practitioner]", key="actor"),
    # FT1-24 (entered by code) is the enterer; FT1-21 (ordered by) has no ChargeItem element.
    F("FT1", 24, "ChargeItem", "enterer", "XCN[Practitioner]"),
    # FT1-13 (department code) is the cost center; FT1-32/33 the performing/ordering facility.
    F("FT1", 13, "ChargeItem", "costCenter", "CWE[Organization]"),
    F("FT1", 32, "ChargeItem", "performingOrganization", "XON[Organization]"),
    F("FT1", 33, "ChargeItem", "requestingOrganization", "XON[Organization]"),
)

#: IG ``ROL[Encounter-PractitionerRole]`` / ``ROL[Patient-GeneralPractitioner]``: the role
#: person as a PractitionerRole. ROL-3 is also the role's ``code`` and ROL-9 (provider type) its
#: ``specialty`` (standard PractitionerRole elements; the IG puts them on the participant).
ROL: tuple[FieldMap, ...] = (
    F("ROL", 1, "Encounter-PractitionerRole", "identifier[]", "EI[Identifier-Extension]"),
    F("ROL", 3, "Encounter-PractitionerRole", "code[]", "CWE[CodeableConcept]", "ProviderRole"),
    F("ROL", 4, "Encounter-PractitionerRole", "practitioner", "XCN[Practitioner]"),
    F("ROL", 5, "Encounter-PractitionerRole", "period.start", "DTM[dateTime]"),
    F("ROL", 6, "Encounter-PractitionerRole", "period.end", "DTM[dateTime]"),
    F("ROL", 9, "Encounter-PractitionerRole", "specialty[]", "CWE[CodeableConcept]"),
    F("ROL", 12, "Encounter-PractitionerRole", "telecom[]", "XTN[ContactPoint]"),
    F("ROL", 13, "Encounter-PractitionerRole", "location[]", "PL[Location]"),
    F("ROL", 14, "Encounter-PractitionerRole", "organization", "XON[Organization]"),
)

#: IG ``PRT[PractitionerRole]``: the participating person in their role.
PRT_ROLE: tuple[FieldMap, ...] = (
    F("PRT", 4, "PractitionerRole", "code[]", "CWE[CodeableConcept]", "Participation"),
    F("PRT", 5, "PractitionerRole", "practitioner", "XCN[Practitioner]"),
    F("PRT", 6, "PractitionerRole", "specialty[]", "CWE[CodeableConcept]"),
    F("PRT", 8, "PractitionerRole", "organization", "XON[Organization]"),
    F("PRT", 9, "PractitionerRole", "location[]", "PL[Location]"),
    F("PRT", 11, "PractitionerRole", "period.start", "DTM[dateTime]"),
    F("PRT", 12, "PractitionerRole", "period.end", "DTM[dateTime]"),
    F("PRT", 15, "PractitionerRole", "telecom[]", "XTN[ContactPoint]"),
    F("PRT", 24, "PractitionerRole", "identifier[]", "PLN[Identifier]"),
)

#: IG ``PRT[RelatedPerson]`` (ORU_R01/OML_O21 PATIENT.PRT that is not PP): the person related to
#: the patient; PRT-5 (identifier and name of the person) is added in code.
PRT_RELATED: tuple[FieldMap, ...] = (
    F("PRT", 4, "RelatedPerson", "relationship[]", "CWE[CodeableConcept]", "Participation"),
    F("PRT", 11, "RelatedPerson", "period.start", "DTM[dateTime]"),
    F("PRT", 12, "RelatedPerson", "period.end", "DTM[dateTime]"),
    F("PRT", 14, "RelatedPerson", "address[]", "XAD[Address]"),
    F("PRT", 15, "RelatedPerson", "telecom[]", "XTN[ContactPoint]"),
    F("PRT", 24, "RelatedPerson", "identifier[]", "PLN[Identifier]"),
)

#: IG ``PRT[Device]``: the participating device (PRT-10 identifier, PRT-16 UDI, PRT-17..22
#: details). PRT-10's assigning authority is kept as system and type (IG ``EI[Identifier-System]``)
#: because the ``EI[Identifier-Extension]`` extensions are not defined yet.
PRT_DEVICE: tuple[FieldMap, ...] = (
    F("PRT", 10, "Device", "identifier[]", "EI[Identifier-System]"),
    F("PRT", 16, "Device", "udiCarrier[]", "EI[Device-udiCarrier]"),
    F("PRT", 17, "Device", "manufactureDate", "DTM[dateTime]"),
    F("PRT", 18, "Device", "expirationDate", "DTM[dateTime]"),
    F("PRT", 19, "Device", "lotNumber", "ST[string]"),
    F("PRT", 20, "Device", "serialNumber", "ST[string]"),
    F("PRT", 21, "Device", "distinctIdentifier", "ST[string]"),
    F("PRT", 22, "Device", "type", "CWE[CodeableConcept]"),
)

#: PRD (provider data, referral messages; the IG has no PRD map yet): the provider as a
#: Practitioner (PRD-2 name, PRD-3 address, PRD-5 telecom, PRD-7 licence numbers) in a
#: PractitionerRole (PRD-1 role, PRD-4 location, PRD-8/9 role period) at the organisation of
#: PRD-10 (see converter.h_prd), with the standard elements of those resources.
PRD_PRACTITIONER: tuple[FieldMap, ...] = (
    F("PRD", 2, "Practitioner", "name[]", "XPN[HumanName]"),
    F("PRD", 3, "Practitioner", "address[]", "XAD[Address]"),
    F("PRD", 5, "Practitioner", "telecom[]", "XTN[ContactPoint]"),
    F("PRD", 7, "Practitioner", "identifier[]", "PLN[Identifier]"),
)
PRD_ROLE: tuple[FieldMap, ...] = (
    F("PRD", 1, "PractitionerRole", "code[]", "CWE[CodeableConcept]"),
    F("PRD", 4, "PractitionerRole", "location[]", "PL[Location]"),
    F("PRD", 8, "PractitionerRole", "period.start", "DTM[dateTime]"),
    F("PRD", 9, "PractitionerRole", "period.end", "DTM[dateTime]"),
    F("PRD", 10, "PractitionerRole", "organization", "XON[Organization]"),
)

EVN: tuple[FieldMap, ...] = (
    F("EVN", 2, "Provenance", "recorded", "DTM[instant]"),
    F("EVN", 4, "Provenance", "reason[]", "CWE[CodeableConcept]", "EventReason"),
    F(
        "EVN",
        5,
        "Provenance",
        "agent[]",
        "XCN[Practitioner]",
        key="who",
        fixed={
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                        "code": "author",
                    }
                ]
            }
        },
    ),
    F("EVN", 6, "Provenance", "occurredDateTime", "DTM[dateTime]"),
    F("EVN", 7, "Provenance", "location", "HD[Location]"),
)

MSH: tuple[FieldMap, ...] = (
    F("MSH", 4, "MessageHeader", "sender", "HD[Organization]"),
    F("MSH", 9, "MessageHeader", "eventCoding", "MSG[Coding]"),
    F("MSH", 19, "MessageHeader", "language", "CWE[code]"),
    F("MSH", 22, "MessageHeader", "responsible", "XON[Organization]"),
)

#: Every declared row, by (segment, resource type).
FIELD_MAPS: dict[tuple[str, str], tuple[FieldMap, ...]] = {}
for _rows in (
    IN1_INSURED,
    PID,
    PV1_PATIENT,
    PD1,
    NK1,
    NK1_CONTACT,
    CTD_CONTACT,
    PV1,
    PV2,
    AL1,
    IAM,
    DG1,
    PR1,
    IN1,
    IN2,
    IN2_INSURED,
    GT1,
    ORC_SR,
    OBR_SR,
    OBR_DR,
    ORC_DR,
    OBR_SPECIMEN,
    OBX,
    NTE,
    SPM,
    RXA,
    ORC_IMM,
    RXR,
    ORC_MED,
    RXO,
    RXE,
    RXD,
    TXA,
    SCH,
    AIS,
    AIG,
    AIL,
    AIP,
    CTI,
    SCH_SR,
    AIS_SR,
    RF1,
    AUT,
    INV,
    FT1,
    ROL,
    PRT_ROLE,
    PRT_RELATED,
    PRT_DEVICE,
    PRD_PRACTITIONER,
    PRD_ROLE,
    EVN,
    MSH,
    IN2_PATIENT,
    GT1_PATIENT,
    GT1_SPOUSE,
    GT1_EMPLOYER,
    GT1_CONTACT_PERSON,
):
    FIELD_MAPS.setdefault((_rows[0].segment, _rows[0].resource), ())
    FIELD_MAPS[(_rows[0].segment, _rows[0].resource)] += _rows


#: Fields the segment handlers (converter.py) map in code because the rule needs more than one
#: field or a condition; listed so the coverage report counts them.
CODE_MAPPED: dict[tuple[str, str], frozenset[int]] = {
    ("MSH", "MessageHeader"): frozenset({3, 5, 6, 8, 11, 17, 23, 24, 25, 26, 27}),
    ("MSH", "Provenance-Source"): frozenset({3, 4, 7, 9, 22}),
    ("MSH", "Bundle"): frozenset({7, 10}),
    ("MSA", "MessageHeader"): frozenset({1, 2}),
    ("ROL", "CareTeam"): frozenset({3, 4, 5, 6, 8, 9, 10, 12, 14}),
    ("PRT", "CareTeam"): frozenset({4, 5, 6, 8, 11, 12, 14, 15}),
    ("PRT", "RelatedPerson"): frozenset({5, 23}),
    ("PV1", "Coverage"): frozenset({20}),
    # The Patient PID-2/3/4 identify is the Appointment's patient participant (one actor; the
    # IG's R5 extension-Appointment.subject has no R4 element).
    ("PID", "Appointment"): frozenset({2, 3, 4}),
    ("EVN", "Provenance"): frozenset({1}),
    ("PID", "Patient"): frozenset({7, 10, 12, 21, 22, 36, 39}),
    ("PID", "Account"): frozenset({18}),
    ("PID", "Provenance-Patient"): frozenset({33, 34}),
    ("PD1", "Observation-LivingWill"): frozenset({7}),
    ("MRG", "Account"): frozenset({3}),
    ("PV1", "Encounter"): frozenset({2, 37, 40, 45, 53, 54}),
    ("IN1", "Coverage"): frozenset({3, 5, 6, 7, 8, 9, 10, 16, 37, 44, 49, 55}),
    ("GT1", "Account"): frozenset({11, 13, 14}),
    ("RF1", "ServiceRequest"): frozenset({1, 2, 7, 8}),
    ("AUT", "ClaimResponse"): frozenset({2, 3, 4, 5, 7, 10, 29}),
    ("CON", "Consent"): frozenset({2, 4, 5, 11, 13, 14, 15}),
    ("PRD", "Practitioner"): frozenset({7}),
    ("PRD", "PractitionerRole"): frozenset({8, 9, 11, 13}),
    ("INV", "Substance"): frozenset({2, 4, 8, 9, 11, 12}),
    ("FT1", "ChargeItem"): frozenset({4, 11, 12, 25, 29, 34, 35, 42, 43}),
    ("OBR", "ServiceRequest"): frozenset({11, 17, 27, 29}),
    ("ORC", "ServiceRequest"): frozenset({7, 21, 22, 23, 24, 38}),
    ("DG1", "Condition"): frozenset({4, 21, 22}),
    ("DG1", "EpisodeOfCare"): frozenset({3, 4, 5, 6, 15, 16, 19, 20, 21, 22}),
    ("DG1", "Encounter"): frozenset({3, 4, 5, 6, 15, 16, 19, 20, 21, 22}),
    ("PR1", "Procedure"): frozenset({4, 7, 16, 25}),
    ("RXO", "MedicationRequest"): frozenset({2, 3, 4, 5, 7, 12, 18, 19, 21, 22, 23, 25, 26, 28, 33, 36}),
    ("RXE", "MedicationRequest"): frozenset({3, 5, 6, 7, 11, 19, 23, 24, 39, 41, 45}),
    ("RXD", "MedicationDispense"): frozenset({5, 6, 7, 12, 25}),
    ("RXC", "Medication"): frozenset({2, 3, 4, 5, 6, 8, 9}),
    ("IAM", "AllergyIntolerance"): frozenset({14, 15, 27}),
    ("MRG", "Patient"): frozenset({1}),
    ("NK1", "Patient"): frozenset({30, 31, 32}),
    ("OBR", "DiagnosticReport"): frozenset({4}),
    ("OBR", "Specimen"): frozenset({2, 15}),
    ("ORC", "Provenance"): frozenset({1, 9, 10, 11, 12, 17, 18, 19, 21, 22, 23, 24, 28}),
    ("OBX", "Observation"): frozenset({2, 4, 5, 6, 16, 18, 23, 24, 25, 29, 30, 33}),
    # A repeating OBX-5: the components take OBX-3/5/6/7, the Observation the other fields as above.
    ("OBX", "Observation-Component"): frozenset(
        {3, 4, 5, 6, 7, 8, 10, 11, 14, 16, 17, 18, 19, 20, 21, 23, 24, 25, 29, 30, 33}
    ),
    ("OBX", "DocumentReference"): frozenset({2, 5}),
    ("SPM", "Specimen"): frozenset({2, 3, 17}),
    ("RXA", "Immunization"): frozenset({6, 7, 9, 21, 28}),
    ("SCH", "Appointment"): frozenset({10, 11, 13, 14, 17, 18, 21, 26, 27}),
    ("AIS", "Appointment"): frozenset({4}),
    ("AIG", "Appointment"): frozenset({3, 8, 9, 10, 11, 12, 14}),
    ("AIL", "Appointment"): frozenset({4, 6, 7, 8, 9, 10, 12}),
    ("AIP", "Appointment"): frozenset({4, 6, 7, 8, 9, 10, 12}),
    ("SCH", "ServiceRequest"): frozenset({6, 25}),  # SCH-6: the order's intent is "order"
    ("AIS", "ServiceRequest"): frozenset({4, 5, 7}),
    ("TQ1", "ServiceRequest"): frozenset({2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 14}),
    # TQ1-4 (explicit time, TM) is the dosage timing's timeOfDay: the IG row's timing.event is a
    # dateTime, which a time of day without a date cannot fill.
    ("TQ1", "MedicationRequest"): frozenset({2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14}),
    ("ROL", "Patient-GeneralPractitioner"): frozenset({1, 3, 4, 5, 6, 11, 12, 13, 14}),
    ("ROL", "Encounter-PractitionerRole"): frozenset({11}),
    ("PRT", "PractitionerRole"): frozenset({7, 14, 23}),
    # PRT-2 'D' (any PRT map): the participation is inactive, so it is not linked.
    ("PRT", "Patient-GeneralPractitioner-PractitionerRole"): frozenset({2, 4, 5, 8, 9, 11, 12, 14, 15, 24}),
    ("NTE", "Observation"): frozenset({3, 5, 6}),
    ("NTE", "ServiceRequest"): frozenset({3, 5, 6}),
    ("SFT", "Device"): frozenset({1, 2, 3, 4, 5, 6}),
    ("NTE", "Appointment-Comment"): frozenset({3, 4, 5, 6, 9}),
    ("IN3", "CareTeam"): frozenset({21}),
    ("SFT", "MessageHeader"): frozenset({2, 3}),
    ("TXA", "DocumentReference"): frozenset({3, 4, 13, 17, 19}),
    ("RXR", "MedicationRequest"): frozenset({1, 2, 4, 5}),
    ("PRT", "Patient-GeneralPractitioner-Practitioner"): frozenset({5}),
    ("PRT", "Observation-Location"): frozenset({9, 14}),
    ("MSH", "Encounter"): frozenset({9}),
    ("PV2", "Encounter"): frozenset({12}),
    ("MSH", "Provenance-Operator"): frozenset({4, 22}),
}

# ------------------------------------------------------------------------ extra datatype maps


def _extension_code(v: Any, ctx: Context, vocab: str | None) -> Any:
    cc = DATATYPES["CWE[CodeableConcept]"](v, ctx, vocab)
    return [{"url": "code", "valueCodeableConcept": cc}] if cc else None


def _extension_species(v: Any, ctx: Context, vocab: str | None) -> Any:
    cc = DATATYPES["CWE[CodeableConcept]"](v, ctx, vocab)
    return [{"url": "species", "valueCodeableConcept": cc}] if cc else None


def _st_address(v: Any, ctx: Context, vocab: str | None) -> Any:
    text = v.get(1)
    return {"text": text} if text else None


def _st_identifier(v: Any, ctx: Context, vocab: str | None) -> Any:
    text = v.get(1)
    return {"value": text} if text else None


def _cwe_identifier(v: Any, ctx: Context, vocab: str | None) -> Any:
    code = v.get(1)
    if not code:
        return None
    out: Json = {"value": code}
    from pyheart.transformers.hl7v2_fhir.datatypes import code_system

    system = code_system(v.get(3), ctx)
    if system:
        out["system"] = system
    return out


def _xon_or_cwe_organization(v: Any, ctx: Context, vocab: str | None) -> Any:
    """A field that was an XON and became a CWE in v2.8 (RXO-32 dispensing pharmacy) ->
    Reference(Organization), read as the message's version defines it (``XON[Organization]``
    before 2.8, ``CWE[Organization]`` from it)."""
    from pyheart.transformers.hl7v2_fhir.datatypes import cwe_organization, xon_organization

    if _version_key(ctx.msg.version) >= (2, 8):
        return cwe_organization(v, ctx, vocab)
    return xon_organization(v, ctx, vocab)


def _version_key(version: str) -> tuple[int, ...]:
    """'2.8.2' -> (2, 8, 2); what does not read as a version sorts first."""
    parts: list[int] = []
    for part in version.strip().split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def _group_number(kind: str) -> Callable[[Any, Context, str | None], Any]:
    """ORC-4 placer group number -> the Identifier of its placer ('PGN') or filler ('FGN') part
    (IG ``EIP[Identifier-PlacerAssignedIdentifier]`` / ``-FillerAssignedIdentifier``). Before
    v2.8.2 ORC-4 is an EI (the placer's group number, its authority in components 2-4); an EIP
    sends each part as one component with sub-components."""
    from pyheart.transformers.hl7v2_fhir.datatypes import ei_identifier, eip_identifiers

    def read(v: Any, ctx: Context, vocab: str | None) -> Any:
        if ctx.delimiters.subcomponent in v.raw:
            return next((i for i in eip_identifiers(v, ctx) if i["type"]["coding"][0]["code"] == kind), None)
        ident = ei_identifier(v, ctx) if kind == "PGN" else None
        if ident is not None:
            ident["type"] = {"coding": [{"system": V2_CS + "0203", "code": "PGN"}]}
        return ident

    return read


def _nm_los(v: Any, ctx: Context, vocab: str | None) -> Any:
    from pyheart.transformers.hl7v2_fhir.datatypes import number

    n = number(v.get(1))
    if n is None:
        return None
    return {"value": n, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}


def _msg_coding(v: Any, ctx: Context, vocab: str | None) -> Any:
    from pyheart.transformers.hl7v2_fhir.datatypes import coding

    event = v.get(2)
    if not event:
        return None
    out = coding(event, V2_CS + "0003", "^".join(p for p in (v.get(1), event, v.get(3)) if p))
    return out if "code" in out else None


def _ndl_practitioner(v: Any, ctx: Context, vocab: str | None) -> Any:
    """NDL -> Reference(PractitionerRole) (IG ``NDL[PractitionerRole]``): the practitioner
    (NDL.1, CNN[Practitioner]), the period (NDL.2/NDL.3) and the location (NDL.4-NDL.11, the
    levels of a PL: point of care, room, bed, facility, status, type, building, floor)."""
    from pyheart.transformers.hl7v2_fhir.datatypes import dtm
    from pyheart.transformers.hl7v2_fhir.ids import resource_id

    person = ctx.practitioner_from_cnn(v.component(1))
    d = ctx.delimiters
    comps = v.raw.split(d.component)
    where = None
    if len(comps) > 3 and any(comps[3:11]):
        where = ctx.location_from_pl(Value(d.component.join(comps[3:11]), d, 0, ctx.charset))
    if person is None and where is None:
        return None
    role: Json = {"resourceType": "PractitionerRole"}
    if person is not None:
        role["practitioner"] = person
    start, end = dtm(v.get(2), ctx.default_tz), dtm(v.get(3), ctx.default_tz)
    if start or end:
        role["period"] = {k: x for k, x in (("start", start), ("end", end)) if x}
    if where is not None:
        role["location"] = [where]
        status = v.get(8).strip().lower()
        if status in _LOCATION_STATUS:
            _location_status(ctx, where, status)
    key = [_rid_in(r["reference"]) if r else "" for r in (person, where)]
    return ctx.add_shared(role, resource_id("PractitionerRole", "NDL", *key, start or "", end or ""))


def _rid_in(reference: str) -> str:
    return reference.rpartition(":")[2].rpartition("/")[2]


#: FHIR Location.status codes (IG NDL.8 is an IS[code] of them).
_LOCATION_STATUS = frozenset({"active", "suspended", "inactive"})


def _location_status(ctx: Context, where: Json, status: str) -> None:
    """IG NDL.8 (location status): the status of every level of the NDL's location (the most
    specific one ``where`` refers to and each one it is partOf), unless one is set."""
    seen: set[str] = set()
    ref: Any = where
    while isinstance(ref, dict) and ref.get("reference") and ref["reference"] not in seen:
        seen.add(ref["reference"])
        entry = ctx.entries.get(_rid_in(ref["reference"]))
        if entry is None:
            return
        entry.resource.setdefault("status", status)
        ref = entry.resource.get("partOf")


def _xtn_default_use(use: str) -> Callable[[Any, Context, str | None], Any]:
    """XTN -> ContactPoint whose ``use`` is ``use`` when XTN.2 is not valued (IG PID-13 "home",
    PID-14 / NK1-6 "work"): the field says whose number it is, whatever the equipment (XTN.3)."""
    xtn = DATATYPES["XTN[ContactPoint]"]

    def contact_point(v: Any, ctx: Context, vocab: str | None) -> Any:
        out = xtn(v, ctx, vocab)  # a copy of its own (the XTN map copies), safe to change
        if out is not None and not v.get(2):
            out["use"] = use
        return out

    return contact_point


def _languages(v: Any, ctx: Context, vocab: str | None) -> Any:
    """CWE language -> CodeableConcept in BCP 47 for every coding of the value: the alternate
    code (CWE.4 / CWE.10, usually ISO 639-2 from table 0296) is translated as CWE.1 is, the
    sender's codings kept."""
    cc = DATATYPES["CWE[CodeableConcept-Language]"](v, ctx, vocab)  # a copy of its own
    if cc is None or not (v.get(4) or v.get(10)):
        return cc
    for pos in (4, 10):
        code = v.get(pos)
        if not code:
            continue
        bcp = code if lookup("PrimaryLanguage", code) else ISO639_2.get(code.lower())
        mapped = lookup("PrimaryLanguage", bcp or "")
        codings = cc.get("coding", [])
        if mapped is not None and all(c.get("code") != mapped[0] for c in codings):
            cc["coding"] = [*codings, coding(mapped[0], mapped[2], mapped[1])]
    return cc


DATATYPES.update(
    {
        "XTN[ContactPoint-home]": _xtn_default_use("home"),
        "XTN[ContactPoint-work]": _xtn_default_use("work"),
        "CWE[CodeableConcept-Languages]": _languages,
        "CWE[Extension-code]": _extension_code,
        "CWE[Extension-species]": _extension_species,
        "ST[Address]": _st_address,
        "ST[Identifier]": _st_identifier,
        "CWE[Identifier]": _cwe_identifier,
        "EIP[Identifier-PlacerGroup]": _group_number("PGN"),
        "EIP[Identifier-FillerGroup]": _group_number("FGN"),
        "XON|CWE[Organization]": _xon_or_cwe_organization,
        "NM[Quantity-LengthOfStay]": _nm_los,
        "MSG[Coding]": _msg_coding,
        "NDL[Practitioner]": _ndl_practitioner,
    }
)


# ---------------------------------------------------------------------------------- engine


class _Compiled(NamedTuple):
    field: int
    fn: Any
    vocab: str | None
    many: bool
    parents: tuple[str, ...]
    leaf: str
    key: str | None
    listed_key: bool
    fixed: Json | None
    when: Callable[[Segment], bool] | None


_COMPILED: dict[int, tuple[tuple[tuple[FieldMap, ...], list[_Compiled]]]] = {}


def _compile(rows: tuple[FieldMap, ...]) -> list[_Compiled]:
    """Resolve each row's datatype function and split its path once, not per message.

    Keyed by the identity of the row tuple: pass module-level tables, never fresh tuples."""
    hit = _COMPILED.get(id(rows))
    if hit is not None and hit[0][0] is rows:
        return hit[0][1]
    out: list[_Compiled] = []
    for row in rows:
        many = row.path.endswith("[]")
        *parents, leaf = (row.path[:-2] if many else row.path).split(".")
        key = row.key
        listed = bool(key and key.endswith("-1"))
        # A repeating element without key/fixed wrapping may take several items per value.
        multi = REPEATING.get(row.dt) if many and not row.key and not row.fixed else None
        out.append(
            _Compiled(
                row.field,
                multi or DATATYPES[row.dt],
                row.vocab,
                many,
                tuple(parents),
                leaf,
                key[:-2] if key and listed else key,
                listed,
                row.fixed,
                row.when,
            )
        )
    _COMPILED[id(rows)] = ((rows, out),)
    return out


_REPEATING_FNS = frozenset(REPEATING.values())
Plan = Callable[[list[str], Json, Context, Segment], Json]
_PLANS: dict[int, tuple[tuple[FieldMap, ...], Plan]] = {}


def _plan(rows: tuple[FieldMap, ...]) -> Plan:
    """The rows of one table as one generated Python function (built once per table).

    Interpreting the rows per message (unpack a row, test its options, walk its path) was a
    tenth of a conversion; the generated function has the constants of each row inlined and
    only tests what the field's value needs. The source is made from this module's own static
    tables (``repr`` of their strings), never from message content."""
    hit = _PLANS.get(id(rows))
    if hit is not None and hit[0] is rows:
        return hit[1]
    env: dict[str, Any] = {"Value": Value, "shared_raw": shared_raw}
    src = [
        "def plan(fields, res, ctx, seg):",
        "    d = ctx.delimiters",
        "    charset = ctx.charset",
        "    rep = d.repetition",
        "    width = len(fields)",
    ]
    for i, r in enumerate(_compile(rows)):
        env[f"fn{i}"], env[f"vocab{i}"], env[f"fixed{i}"], env[f"when{i}"] = r.fn, r.vocab, r.fixed, r.when
        inner = shared_inner(r.fn)
        env[f"inner{i}"] = inner
        call = (
            f"shared_raw(inner{i}, part, ctx, vocab{i})"
            if inner is not None
            else f"fn{i}(Value(part, d, 0, charset), ctx, vocab{i})"
        )
        when = f" and when{i}(seg)" if r.when is not None else ""
        src += [
            f"    if width > {r.field}:",
            f"        raw = fields[{r.field}]",
            f"        if raw and raw != '\"\"'{when}:",
            (
                "            parts = [p for p in raw.split(rep) if p] if rep in raw else (raw,)"
                if r.many
                else "            parts = (raw.split(rep, 1)[0] if rep in raw else raw,)"
            ),
            "            for part in parts:",
            f"                value = {call}",
            "                if value is not None:",
        ]
        body = "                    "
        if r.key is not None:
            item = f"dict(fixed{i})" if r.fixed else "{}"
            wrapped = "[value]" if r.listed_key else "value"
            src += [f"{body}value = {{**{item}, {r.key!r}: {wrapped}}}"]
        elif r.fixed:
            src += [f"{body}if isinstance(value, dict):", f"{body}    value = {{**fixed{i}, **value}}"]
        src += [f"{body}node = res"]
        for p in r.parents:
            src += [
                f"{body}nxt = node.get({p!r})",
                f"{body}if nxt is None:",
                f"{body}    nxt = node[{p!r}] = {{}}",
                f"{body}node = nxt",
            ]
        if r.many and r.fn in _REPEATING_FNS:
            src += [
                f"{body}lst = node.setdefault({r.leaf!r}, [])",
                f"{body}for item in value:",
                f"{body}    if item not in lst:",
                f"{body}        lst.append(item)",
            ]
        elif r.many:
            src += [
                f"{body}lst = node.get({r.leaf!r})",
                f"{body}if lst is None:",
                f"{body}    node[{r.leaf!r}] = [value]",
                f"{body}elif value not in lst:",
                f"{body}    lst.append(value)",
            ]
        else:
            src += [f"{body}if {r.leaf!r} not in node:", f"{body}    node[{r.leaf!r}] = value"]
    src.append("    return res")
    code = compile("\n".join(src) + "\n", f"<field map plan {rows[0].segment}>", "exec")
    exec(code, env)  # noqa: S102 - generated from the static tables above, see the docstring
    plan: Plan = env["plan"]
    _PLANS[id(rows)] = (rows, plan)
    return plan


def apply(rows: tuple[FieldMap, ...], seg: Segment, res: Json, ctx: Context) -> Json:
    """Apply the field maps ``rows`` for ``seg`` onto ``res`` (in place) and return it.

    Semantics per row: the field's repetitions (all for ``[]`` paths, else the first) go
    through the row's datatype map; a ``key`` wraps the value in ``{**fixed, key: value}``,
    otherwise ``fixed`` supplies defaults the value overrides; a scalar element keeps the first
    value set, a list gains each value it does not hold yet."""
    return _plan(rows)(seg.raw_fields(), res, ctx, seg)


__all__ = ["FIELD_MAPS", "FieldMap", "apply"]
