"""Per-message conversion state: the bundle being built, id rules and shared resources.

Ids: a resource with a business identifier gets ``identifier_id(type, system, value)`` and a
conditional update ``PUT Type?identifier=system|value`` (transaction bundles), so every message
about the same patient, order or result lands on the same resource. Resources without an
identifier get an id from the sender, the message control id and the segment position, and a
``PUT Type/id``: redelivering a message is idempotent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import orjson

from pyheart.broker.hl7v2 import Delimiters, Hl7Message, Segment, Value
from pyheart.transformers.hl7v2_fhir import datatypes as dt
from pyheart.transformers.hl7v2_fhir.ids import identifier_id, message_resource_id, resource_id

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Options:
    """Conversion settings (the plugin's validated config)."""

    #: Prefix of identifier systems made from local namespace ids (``urn:id:HOSP``).
    system_base: str = "urn:id:"
    #: Prefix of code systems made from local coding-system names (CWE.3); None: ``system_base``.
    code_system_base: str | None = None
    #: ``transaction`` (conditional updates, ``urn:uuid`` references) or ``batch`` (PUT by id).
    bundle_type: str = "transaction"
    #: Zone for times without one when MSH-7 has none either (``+01:00``, ``Z``); None keeps
    #: such values at day precision.
    default_timezone: str | None = None
    #: Emit MessageHeader (MSH) and Provenance (MSH, EVN) resources.
    message_header: bool = True
    provenance: bool = True
    #: Identifier assigning authorities as Organization resources (IG CX.4 -> assigner(Organization));
    #: off: ``assigner.display`` only.
    assigner_organizations: bool = True
    #: NK1 also as Patient.contact (IG NK1[Patient]) besides the RelatedPerson.
    patient_contacts: bool = True


class Entry:
    """One bundle entry being built."""

    __slots__ = ("ident", "merged", "resource", "rid", "rtype")

    def __init__(self, rtype: str, rid: str, resource: Json, ident: tuple[str, str] | None) -> None:
        self.rtype = rtype
        self.rid = rid
        self.resource = resource
        self.ident = ident
        #: Another resource with this id was merged in: segments may have repeated list items.
        self.merged = False


class Context:
    """State while one message is converted."""

    def __init__(self, msg: Hl7Message, options: Options) -> None:
        self.msg = msg
        self.options = options
        self.system_base = options.system_base
        self.code_system_base = options.code_system_base or options.system_base
        msh = msg.msh
        self.default_tz = dt.parse_tz(msh.get(7)) or options.default_timezone
        self.control_id = msh.get(10)
        self.delimiters = msg.delimiters
        #: Per-message memo of resource-creating datatype maps (see datatypes._memo).
        self.memo: dict[tuple[object, ...], Any] = {}
        self.charset = msg.charset
        #: Coded-map results kept across messages (see datatypes.coded_cache).
        self.coded = dt.coded_cache(self)
        #: Scope for ids of things only unique per sender (locations, unidentified orgs).
        self.scope = f"{msh.get(3)}^{msh.get(4)}"
        self.transaction = options.bundle_type == "transaction"
        self.entries: dict[str, Entry] = {}
        #: The sender's identifier system, used for identifiers without an assigning authority.
        self.sender_system = _sender_system(
            msh.value(4).raw, msh.value(3).raw, self.delimiters, self.charset, self.system_base
        )
        self.patient: Json | None = None
        self.patient_ref: Json | None = None
        self.encounter_ref: Json | None = None
        #: Puts of the build being recorded (see :meth:`replay`), else None.
        self.recording: list[tuple[str, str, Json, tuple[str, str] | None, bytes]] | None = None
        #: Memo entries set by the build being recorded: (memo key, index of its put).
        self.marks: list[tuple[tuple[object, ...], int]] = []
        self.recipes = _recipes(
            (
                self.delimiters,
                self.charset,
                self.system_base,
                self.code_system_base,
                self.default_tz,
                self.sender_system,
                self.scope,
                self.transaction,
                options.assigner_organizations,
            )
        )

    # ------------------------------------------------------------------------------- entries
    def ref(self, rtype: str, rid: str) -> Json:
        """A reference to the entry ``rtype``/``rid`` as this bundle type resolves it."""
        if self.transaction:
            return {"reference": f"urn:uuid:{rid}"}
        return {"reference": f"{rtype}/{rid}"}

    def add(self, resource: Json, *, ident: Json | None = None, key: tuple[str, ...] = ()) -> Json:
        """Add ``resource``; its id comes from ``ident`` (a business Identifier with system and
        value) or from ``key`` within this message. Returns a Reference to it. A resource already
        in the bundle under the same id is merged (its valued elements win)."""
        rtype = resource["resourceType"]
        ident_key: tuple[str, str] | None = None
        if ident and ident.get("value"):
            if not ident.get("system") and self.sender_system:
                # No assigning authority: the sender's namespace makes the identifier matchable.
                ident["system"] = self.sender_system
            system = ident.get("system") or ""
            ident_key = (system, ident["value"])
            rid = identifier_id(rtype, system, ident["value"])
        else:
            rid = message_resource_id(rtype, self.scope, self.control_id, *key)
        return self._put(rtype, rid, resource, ident_key)

    def add_shared(self, resource: Json, rid: str) -> Json:
        """Add a resource whose id the caller derived (shared across messages)."""
        return self._put(resource["resourceType"], rid, resource, None)

    def _put(self, rtype: str, rid: str, resource: Json, ident: tuple[str, str] | None) -> Json:
        if self.recording is not None:
            self.recording.append((rtype, rid, resource, ident, orjson.dumps(resource)))
        entries = self.entries
        found = entries.get(rid)
        if found is not None and found.resource is not resource:
            whose = other_patient(found.resource, resource)
            if whose:
                # A sender reusing an identifier (an order number) for another patient's resource:
                # never merged into that patient's; kept apart under an id of its own, the same
                # for that identifier and patient in every message.
                rid = resource_id(rtype, "apart", rid, whose)
                ident = None
                found = entries.get(rid)
        if found is None:
            entries[rid] = Entry(rtype, rid, resource, ident)
        elif found.resource is not resource:
            target = found.resource
            found.merged = True
            for k, v in resource.items():
                if k not in target and not _choice_taken(target, k):
                    target[k] = v
        if self.transaction:  # self.ref(), inlined: every resource added comes through here
            return {"reference": f"urn:uuid:{rid}"}
        return {"reference": f"{rtype}/{rid}"}

    def bundle(self, bundle_id: str) -> Json:
        """The finished Bundle."""
        entries: list[Json] = []
        append = entries.append
        transaction = self.transaction
        for e in self.entries.values():
            res = e.resource
            rid = e.rid
            ident = e.ident
            if e.merged:
                _drop_repeats(res)
            if transaction and ident is not None and ident[0]:
                url = f"{e.rtype}?identifier={_q(ident[0])}|{_q(ident[1])}"
                res.pop("id", None)
            else:
                url = f"{e.rtype}/{rid}"
                res["id"] = rid
            append({"fullUrl": f"urn:uuid:{rid}", "resource": res, "request": {"method": "PUT", "url": url}})
        return {"resourceType": "Bundle", "id": bundle_id, "type": self.options.bundle_type, "entry": entries}

    # ---------------------------------------------------------------------- shared resources
    def _replay(self, kind: str, v: Value, build: Callable[[Value], Json | None]) -> Json | None:
        """``build(v)``, which adds shared resources (practitioners, organisations, locations)
        and returns a Reference, replayed when the same value was built under the same settings
        in an earlier message: the same doctors, facilities and wards recur in every message of
        a feed (see :meth:`replay`)."""
        if self.recording is not None:
            return build(v)  # part of an enclosing build, which records these puts
        return self.replay((kind, v.raw, v.level), lambda: build(v))

    def replay(self, key: tuple[object, ...], build: Callable[[], Json | None]) -> Json | None:
        """``build()``, whose result and the resources it adds depend only on ``key`` and this
        context's settings, replayed when an earlier message built the same ``key``. What is
        kept is the JSON of each resource added (as added and as left) and of the result, so
        every message gets its own objects, merged into its bundle exactly as a fresh build
        would. Inside another build, ``build()`` simply runs (the outer one records)."""
        if self.recording is not None:
            return build()
        kept = self.recipes.get(key)
        if kept is not None:
            puts, result, marks = kept
            objs: list[Json] = []
            refs: list[Json] = []
            entries = self.entries
            for rtype, rid, as_added, as_left, ident, same in puts:
                if same >= 0:
                    res = objs[same]
                elif rid in entries:
                    res = orjson.loads(as_added)  # merged: the keys it had when added count
                else:
                    res = orjson.loads(as_left)
                objs.append(res)
                refs.append(self._put(rtype, rid, res, ident))
            for memo_key, index in marks:
                self.memo[memo_key] = refs[index]
            if result is None:
                return None
            return refs[-1] if result is _LAST_REF else orjson.loads(result)
        rec: list[tuple[str, str, Json, tuple[str, str] | None, bytes]] = []
        self.recording = rec
        self.marks = []
        try:
            out = build()
        finally:
            self.recording = None
        recipe: list[Recipe] = []
        first: dict[int, int] = {}
        for rtype, rid, res, ident, as_added in rec:
            same = first.setdefault(id(res), len(recipe))
            recipe.append(
                (rtype, rid, as_added, orjson.dumps(res), ident, same if same < len(recipe) else -1)
            )
        if out is None:
            kept_out = None
        elif rec and out == self.ref(rec[-1][0], rec[-1][1]):
            kept_out = _LAST_REF  # the usual result: a reference to the last resource added
        else:
            kept_out = orjson.dumps(out)
        self.keep(key, (tuple(recipe), kept_out, tuple(self.marks)))
        return out

    def keep(self, key: tuple[object, ...], value: object) -> None:
        """Keep ``value`` for later messages under these settings (a bounded store)."""
        if len(self.recipes) > _RECIPES_MAX:
            self.recipes.clear()
        self.recipes[key] = value

    def practitioner_from_xcn(self, v: Value) -> Json | None:
        """XCN -> Practitioner (IG ``XCN[Practitioner]``), added once per id; returns a Reference."""
        return self._replay("XCN", v, self._practitioner_from_xcn)

    def _practitioner_from_xcn(self, v: Value) -> Json | None:
        c = dt.comps(v, self)
        ident_value = c[1]
        name = xcn_name(v, c, self)
        if not ident_value and not name:
            if c[13]:
                return self._typed_practitioner(c[13])
            return None
        res: Json = {"resourceType": "Practitioner"}
        ident = self.xcn_identifier(v, c)
        if ident is not None:
            res["identifier"] = [ident]
        if name:
            if c[17] and "period" not in name:
                # IG XCN.17 (name validity range, DR) when XCN.19/XCN.20 are absent.
                period = dt.dr_period(v.component(17), self)
                if period:
                    name["period"] = period
            res["name"] = [name]
        qual = c[7]
        if qual:
            # IG XCN.7 -> qualification.code (IS[CodeableConcept], DegreeLicenseCertificate).
            mapped = dt.lookup("DegreeLicenseCertificate", qual)
            cd = dt.coding(mapped[0], mapped[2], mapped[1]) if mapped else dt.coding(qual, dt.V2_CS + "0360")
            res["qualification"] = [{"code": {"coding": [cd]}}]
        if ident is not None:
            if not ident.get("system") and self.sender_system:
                ident["system"] = self.sender_system  # matchable, as for every identifier
            system = ident.get("system") or ""
            rid = identifier_id("Practitioner", system, ident_value)
            entry_ident = (system, ident_value) if system else None
            return self._put("Practitioner", rid, res, entry_ident)
        given = tuple(name.get("given") or ()) if name else ()
        family = name.get("family", "") if name else ""
        rid = resource_id("Practitioner", self.scope, *given, family)
        return self._put("Practitioner", rid, res, None)

    def xcn_identifier(self, v: Value, c: list[str]) -> Json | None:
        """The Identifier of an XCN (``c`` its components, ``dt.comps``): XCN.1 the value, XCN.9
        the assigning authority (system and assigner), XCN.11 check digit, XCN.13 type."""
        if not c[1]:
            return None
        ident: Json = {}
        authority = v.component(9) if c[9] or v.get(9, 2) else None
        system = dt.hd_system_of(authority, self) if authority is not None else None
        if system:
            ident["system"] = system
        ident["value"] = c[1]
        if authority is not None:
            assigner = self.assigner(authority)
            if assigner:
                ident["assigner"] = assigner
        if c[11]:
            ident["extension"] = [{"url": _CHECK_DIGIT, "valueString": c[11]}]  # IG XCN.11
        if c[13]:
            ident["type"] = _identifier_type(c[13])
        return ident

    def _typed_practitioner(self, id_type: str) -> Json:
        """A Practitioner known only by the type of its identifier (IG XCN.13 when XCN.1 and the
        name are empty): what kind of identifier the sender holds is still data it sent."""
        res: Json = {"resourceType": "Practitioner", "identifier": [{"type": _identifier_type(id_type)}]}
        return self._put(
            "Practitioner", resource_id("Practitioner", self.scope, "XCN.13", id_type), res, None
        )

    def practitioner_from_cnn(self, v: Value) -> Json | None:
        """CNN (one component, parts as sub-components) -> Practitioner (IG ``CNN[Practitioner]``);
        returns a Reference. Its id comes from the sender and the identifier and name given (a
        CNN has no identifier type or check digit to match it with an XCN's Practitioner)."""
        p = v.parts() + _PAD11
        ident_value, family = p[0].strip(), p[1]
        given = [g for g in (p[2], p[3]) if g]
        if not ident_value and not (family or given):
            return None
        res: Json = {"resourceType": "Practitioner"}
        if ident_value:
            ident: Json = {}
            # CNN.9-CNN.11: the assigning authority, as XCN.9 (the IG leaves it unmapped).
            system = dt.hd_uri(p[8], p[9], p[10].upper(), self.system_base)
            if system:
                ident["system"] = system
            ident["value"] = ident_value
            res["identifier"] = [ident]
        name: Json = {}
        if family:
            name["family"] = family
        if given:
            name["given"] = given
        suffix = [x for x in (p[4], p[6]) if x]  # IG CNN.5, CNN.7 (degree) -> suffix
        if suffix:
            name["suffix"] = suffix
        if p[5]:
            name["prefix"] = [p[5]]
        if name:
            res["name"] = [name]
        rid = resource_id("Practitioner", self.scope, ident_value, family, p[2])
        return self._put("Practitioner", rid, res, None)

    def assigner(self, v: Value) -> Json | None:
        """An identifier's assigning authority (HD): a reference to its Organization, or (with
        ``assigner_organizations`` off) a display-only reference."""
        if self.options.assigner_organizations:
            return self.organization_from_hd(v)
        name = v.get(1) or v.get(2)
        return {"display": name} if name else None

    def organization_from_hd(self, v: Value) -> Json | None:
        """HD (as a field repetition or a component) -> Organization (IG ``HD[Organization]``)."""
        # The raw text alone is ambiguous (a field repetition or a component); with the level
        # it decides every element built. A build being recorded must add the Organization
        # itself (a later message replays it without this one's memo), so it skips the memo.
        memo_key = ("HD", v.raw, v.level)
        if self.recording is None:
            hit = self.memo.get(memo_key)
            if hit is not None:
                return hit  # type: ignore[no-any-return]
        ref = self._replay("HD", v, self._organization_from_hd)
        if ref is not None:
            self.memo[memo_key] = ref
            if self.recording is not None:
                # Inside a recorded build: its replays set this memo entry too (to the
                # reference of the Organization just added).
                self.marks.append((memo_key, len(self.recording) - 1))
        return ref

    def _organization_from_hd(self, v: Value) -> Json | None:
        uid = v.get(2)
        ns, kind = v.get(1), v.get(3)
        if not (ns or uid):
            return None
        res: Json = {"resourceType": "Organization"}
        idents: list[Json] = []
        if ns:
            idents.append({"value": ns})
            res["name"] = ns
        if uid:
            idents.append(self._universal_identifier(uid, kind))
        res["identifier"] = idents
        rid = resource_id("Organization", "HD", ns, uid)
        return self._put("Organization", rid, res, None)

    def _universal_identifier(self, uid: str, kind: str) -> Json:
        """An HD universal id (HD.2) with its type (HD.3) as an Identifier."""
        ident: Json = {"value": uid}
        if kind.upper() in ("ISO", "UUID", "URI"):
            ident["system"] = "urn:ietf:rfc:3986"
            prefix = {"ISO": "urn:oid:", "UUID": "urn:uuid:"}.get(kind.upper(), "")
            ident["value"] = prefix + uid if not uid.startswith("urn:") else uid
        mapped = dt.lookup("UniversalIDType", kind)
        if mapped:
            ident["type"] = {"coding": [dt.coding(mapped[0], mapped[2], mapped[1])]}
        return ident

    def organization_from_xon(self, v: Value) -> Json | None:
        """XON -> Organization (IG ``XON[Organization]``)."""
        return self._replay("XON", v, self._organization_from_xon)

    def _organization_from_xon(self, v: Value) -> Json | None:
        name = v.get(1)
        ident_value = v.get(10) or v.get(3)
        if not (name or ident_value):
            return None
        res: Json = {"resourceType": "Organization"}
        if name:
            res["name"] = name
        ident: Json | None = None
        if ident_value or v.get(7):
            # IG XON.7 maps to identifier.type on its own: a typed identifier without a value
            # (an NPI-type organisation whose number was not sent) still says what it is.
            ident = {}
            if ident_value:
                system = dt.hd_system_of(v.component(6), self) if v.get(6) else None
                if system:
                    ident["system"] = system
                ident["value"] = ident_value
                if v.get(4):
                    # IG XON.4 (as CX.2). XON.5's namingsystem-checkDigit extension is not
                    # allowed on an Identifier, so the scheme is left out.
                    ident["extension"] = [{"url": _CHECK_DIGIT, "valueString": v.get(4)}]
                if v.get(6) or v.get(6, 2):
                    assigner = self.assigner(v.component(6))
                    if assigner:
                        ident["assigner"] = assigner
            if v.get(7):
                mapped = dt.lookup("IdentifierType", v.get(7))
                code = mapped[0] if mapped else v.get(7)
                ident["type"] = {
                    "coding": [dt.coding(code, dt.V2_CS + "0203", mapped[1] if mapped else None)]
                }
            res["identifier"] = [ident]
        if ident is not None and ident.get("system") and ident_value:
            return self.add(res, ident=ident)
        rid = resource_id("Organization", self.scope, name, ident_value)
        return self._put("Organization", rid, res, None)

    def location_from_pl(self, v: Value) -> Json | None:
        """PL -> Locations (IG ``PL[Location]``): facility (si) > building (bu) > floor (lvl) >
        point of care > room (ro) > bed (bd), each ``partOf`` the next valued level up."""
        return self._replay("PL", v, self._location_from_pl)

    def _location_from_pl(self, v: Value) -> Json | None:
        levels = (
            (4, "si", "Site"),
            (7, "bu", "Building"),
            (8, "lvl", "Level"),
            (1, None, None),
            (2, "ro", "Room"),
            (3, "bd", "Bed"),
        )
        parent: Json | None = None
        key: list[str] = [self.scope]
        last: Json | None = None
        last_res: Json | None = None
        c = dt.comps(v, self)  # decoded first sub-components, one split for the six levels
        has_subs = self.delimiters.subcomponent in v.raw
        # IG PL.11: the assigning authority of the location identifiers (HD[Organization]).
        assigner = self.assigner(v.component(11)) if c[11] or (has_subs and v.get(11, 2)) else None
        for pos, code, display in levels:
            name = c[pos]
            if not name:
                continue
            key.append(f"{pos}={name}")
            res: Json = {"resourceType": "Location", "name": name, "identifier": [{"value": name}]}
            if assigner is not None:
                res["identifier"][0]["assigner"] = assigner
            uid = v.get(pos, 2) if has_subs else ""
            if uid:
                # IG PL -> HD[Identifier]: the level's universal id is a second identifier.
                res["identifier"].append(self._universal_identifier(uid, v.get(pos, 3)))
            res["mode"] = "instance"
            if code:
                res["physicalType"] = {
                    "coding": [
                        dt.coding(
                            code, "http://terminology.hl7.org/CodeSystem/location-physical-type", display
                        )
                    ]
                }
            if parent is not None:
                res["partOf"] = parent
            ref = self._put("Location", resource_id("Location", *key), res, None)
            parent = ref
            last = ref
            last_res = res
        if last_res is not None and c[9]:
            last_res["description"] = c[9]
        if last_res is not None and c[10]:
            # IG PL.10: the comprehensive location identifier is a second identifier of the
            # most specific level (EI: the value, the system from its assigning authority).
            comp = v.component(10)
            ident: Json = {}
            system = dt.hd_uri(comp.get(2), comp.get(3), comp.get(4).upper(), self.system_base)
            if system:
                ident["system"] = system
            ident["value"] = c[10]
            if assigner is not None:
                ident["assigner"] = assigner
            last_res["identifier"].append(ident)
        return last

    def sender_ident(self, ident: Json) -> Json:
        """``ident`` with the sender's system when it has none (for ids, not for output)."""
        if ident.get("system") or not self.sender_system:
            return ident
        return {**ident, "system": self.sender_system}


@lru_cache(maxsize=256)
def _sender_system(msh4: str, msh3: str, d: Delimiters, charset: str, system_base: str) -> str | None:
    """The identifier system of the sender (MSH-4, else MSH-3, as HD uris); senders recur."""
    for raw in (msh4, msh3):
        v = Value(raw, d, 0, charset)
        system = dt.hd_uri(v.get(1), v.get(2), v.get(3).upper(), system_base)
        if system:
            return system
    return None


#: One added resource of a recorded build: type, id, JSON as added and as left, identifier,
#: and the index of an earlier put of the same object (-1: none).
Recipe = tuple[str, str, bytes, bytes, tuple[str, str] | None, int]
#: Kept builds (see :meth:`Context.replay`) and other results that depend only on the settings
#: (e.g. the parts of a CX after its value): per settings, by key.
_RECIPES: dict[tuple[object, ...], dict[tuple[object, ...], Any]] = {}
_RECIPES_MAX = 4096
#: Kept result of a build that returned the reference to the last resource it added.
_LAST_REF = b"<last ref>"


def _recipes(settings: tuple[object, ...]) -> dict[tuple[object, ...], Any]:
    """The recorded shared-resource builds for messages converted under ``settings`` (every
    context value those builds read: delimiters, charset, bases, zone, sender, bundle type)."""
    found = _RECIPES.get(settings)
    if found is None:
        if len(_RECIPES) > 32:  # bounded memory: at most 33 x 4097 kept builds
            _RECIPES.clear()
        found = _RECIPES[settings] = {}
    return found


_CHOICES = (
    "value",
    "effective",
    "onset",
    "abatement",
    "deceased",
    "multipleBirth",
    "occurrence",
    "medication",
    "performed",
    "product",
    "collected",
    "serviced",
)


#: The elements that say whose a resource is (the first one both resources have decides).
_PATIENT_KEYS = ("subject", "patient", "beneficiary")


def other_patient(one: Json, other: Json) -> str:
    """The patient reference of ``other`` when ``one`` and ``other`` each name one patient
    (a single Reference) and they differ, else "". A list (Account.subject) may name several
    patients: no conflict."""
    for key in _PATIENT_KEYS:
        mine, theirs = one.get(key), other.get(key)
        if isinstance(mine, dict) and isinstance(theirs, dict):
            return str(theirs.get("reference", "")) if mine != theirs else ""
    return ""


def _drop_repeats(resource: Json) -> None:
    """Drop the repeated items of ``resource``'s lists (a performer, result or note a later
    segment added again to a resource it had already completed), keeping the first of each."""
    changed: list[tuple[str, list[Any]]] = []
    for key, value in resource.items():
        if isinstance(value, list) and len(value) > 1:
            seen: set[bytes] = set()
            kept: list[Any] = []
            for item in value:
                mark = orjson.dumps(item)
                if mark not in seen:
                    seen.add(mark)
                    kept.append(item)
            if len(kept) < len(value):
                changed.append((key, kept))
    for key, kept in changed:
        resource[key] = kept


def _choice_taken(res: Json, key: str) -> bool:
    """True when ``key`` is a choice element ``x[x]`` of which ``res`` already has a type."""
    for prefix in _CHOICES:
        if key.startswith(prefix) and len(key) > len(prefix) and key[len(prefix)].isupper():
            return any(
                k.startswith(prefix) and len(k) > len(prefix) and k[len(prefix)].isupper() for k in res
            )
    return False


#: What ``quote(text, safe=":/.-_~@")`` leaves as it is (identifier values nearly always).
_UNQUOTED = re.compile(r"[A-Za-z0-9_.\-~:/@]*")


@lru_cache(maxsize=4096)
def _q(text: str) -> str:
    if _UNQUOTED.fullmatch(text):
        return text  # what quote() gives, without its cost (a new patient id is a miss)
    return quote(text, safe=":/.-_~@")


_PAD11 = [""] * 11
_CHECK_DIGIT = "http://hl7.org/fhir/StructureDefinition/identifier-checkDigit"
_ASSEMBLY_ORDER = "http://hl7.org/fhir/StructureDefinition/humanname-assembly-order"


def _identifier_type(id_type: str) -> Json:
    """IG XCN.13 -> Identifier.type (IdentifierType concept map, else the v2-0203 code)."""
    mapped = dt.lookup("IdentifierType", id_type)
    cd = dt.coding(mapped[0], mapped[2], mapped[1]) if mapped else dt.coding(id_type, dt.V2_CS + "0203")
    return {"coding": [cd]}


def xcn_name(v: Value, c: list[str], ctx: Context) -> Json | None:
    """The HumanName of the XCN ``v``, from its components ``c`` (``dt.comps``)."""
    out: Json = {}
    family = c[2]
    if family:
        out["family"] = family
        parts = dt.family_parts(v, 2, ctx)
        if parts is not None:
            out["_family"] = parts  # IG XCN.2 is an FN: its parts as extensions of family
    given = [g for g in (c[3], c[4]) if g]
    if given:
        out["given"] = given
    # XCN.5 suffix, XCN.7 degree and XCN.21 professional suffix, in that order: the IG's
    # XCN[PractitionerRole], XCN[Patient], XCN[RelatedPerson] and XCN[Annotation-Author] maps put
    # the degree into name.suffix; XCN[Practitioner] codes it as a qualification, which
    # _practitioner_from_xcn adds as well, so the shared Practitioner is the same whichever
    # field named it first.
    suffix = [s for s in dict.fromkeys((c[5], c[7], c[21])) if s]
    if suffix:
        out["suffix"] = suffix
    if c[6]:
        out["prefix"] = [c[6]]
    use = dt.lookup("NameType", c[10])
    if use:
        out["use"] = use[0]
    start, end = dt.dtm(c[19], ctx.default_tz), dt.dtm(c[20], ctx.default_tz)
    if start or end:
        out["period"] = {k: x for k, x in (("start", start), ("end", end)) if x}
    order = dt.lookup("NameAssemblyOrder", c[18])
    if order:
        # IG XCN.18, as XPN.11 (the R4 humanname-assembly-order extension on the name).
        out["extension"] = [{"url": _ASSEMBLY_ORDER, "valueCode": order[0]}]
    if not (family or given):
        return None
    return out


def segment_key(seg: Segment) -> tuple[str, str]:
    """A key for ids derived from a segment's position in its message."""
    return (seg.name, str(seg.index))


__all__ = ["Context", "Entry", "Options", "other_patient", "segment_key", "xcn_name"]
