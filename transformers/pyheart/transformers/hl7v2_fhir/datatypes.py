"""HL7 v2 datatype -> FHIR datatype maps (the IG's "datatype maps": CX[Identifier], XPN[HumanName]...).

Every map is a function ``(value, ctx, vocab) -> FHIR value | None`` registered in :data:`DATATYPES`
under the IG's map name. ``value`` is one repetition (a :class:`~pyheart.broker.hl7v2.Value`);
``vocab`` names an IG concept map (see :mod:`._vocab`) that codes are translated with. Maps that
create a resource (``XCN[Practitioner]``, ``HD[Organization]``, ``PL[Location]``...) add it to the
bundle through ``ctx`` and return a Reference.
"""

from __future__ import annotations

import re
from calendar import monthrange
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson

from pyheart.broker.hl7v2 import Value, unescape
from pyheart.transformers.hl7v2_fhir._vocab import V2_TABLES, VOCAB
from pyheart.transformers.hl7v2_fhir.ids import resource_id

if TYPE_CHECKING:
    from pyheart.transformers.hl7v2_fhir.context import Context

Json = dict[str, Any]
DatatypeMap = Callable[[Value, "Context", "str | None"], Any]

V2_CS = "http://terminology.hl7.org/CodeSystem/v2-"

# ------------------------------------------------------------------------------------ dates

_DTM = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})?(?P<d>\d{2})?(?P<h>\d{2})?(?P<mi>\d{2})?(?P<s>\d{2})?"
    r"(?:\.(?P<f>\d{1,4}))?(?P<tz>[+-]\d{4}|Z)?$"
)


def parse_tz(text: str) -> str | None:
    """The ``+HH:MM`` offset of a DTM, or None when it has none (or one no clock has)."""
    m = _DTM.match(text.strip())
    if not m or not m.group("tz"):
        return None
    return _fmt_tz(m.group("tz"))


def _fmt_tz(tz: str) -> str | None:
    """``+HHMM`` -> ``+HH:MM``; None beyond FHIR's range (-14:00..+14:00, minutes below 60)."""
    if tz == "Z":
        return "Z"
    hours, minutes = int(tz[1:3]), int(tz[3:])
    if minutes > 59 or hours > 14 or (hours == 14 and minutes):
        return None
    return f"{tz[:3]}:{tz[3:]}"


@lru_cache(maxsize=4096)
def dtm(text: str, default_tz: str | None = None, *, date_only: bool = False) -> str | None:
    """HL7 DTM/TS/DT -> FHIR ``date``/``dateTime``, keeping precision and zone.

    FHIR requires seconds and a zone once a time is given. A time without a zone uses
    ``default_tz`` (the message's MSH-7 zone, which HL7 v2 makes the default for the whole
    message, or the configured zone); with neither, the value keeps day precision rather than
    inventing a zone. Minutes without seconds get ``:00``. Unparseable values give None.
    """
    text = text.strip()
    if not text:
        return None
    m = _DTM.match(text)
    if not m:
        return None
    y, mo, d, h = m.group("y"), m.group("mo"), m.group("d"), m.group("h")
    if y == "0000":  # FHIR has no year zero
        return None
    if mo and not 1 <= int(mo) <= 12:
        return None
    if d and not 1 <= int(d) <= monthrange(int(y), int(mo))[1]:
        return None  # not a day of that month (Feb 30): no date rather than an invalid one
    out = y
    if mo:
        out += f"-{mo}"
        if d:
            out += f"-{d}"
    if date_only or not (h and d):
        return out
    tz = _fmt_tz(m.group("tz")) if m.group("tz") else default_tz
    if tz is None:
        return out
    mi = m.group("mi") or "00"
    s = m.group("s") or "00"
    if int(h) > 23 or int(mi) > 59 or int(s) > 59:
        return out  # a leap second (60) is FHIR-legal but no library can hold it: day precision
    frac = f".{m.group('f')}" if m.group("f") and m.group("s") else ""
    return f"{out}T{h}:{mi}:{s}{frac}{tz}"


def instant(text: str, default_tz: str | None = None) -> str | None:
    """HL7 DTM -> FHIR ``instant`` (needs seconds and a zone), or None when it cannot be one."""
    value = dtm(text, default_tz)
    if value is None or "T" not in value:
        return None
    return value


# --------------------------------------------------------------------------------- vocabulary

#: HL7 table 0396 coding-system names -> FHIR code-system URIs (the common ones).
CODE_SYSTEMS: dict[str, str] = {
    "LN": "http://loinc.org",
    "LOINC": "http://loinc.org",
    "SCT": "http://snomed.info/sct",
    "SNM": "http://snomed.info/sct",
    "SNOMED": "http://snomed.info/sct",
    "SNOMEDCT": "http://snomed.info/sct",
    "I10": "http://hl7.org/fhir/sid/icd-10",
    "ICD10": "http://hl7.org/fhir/sid/icd-10",
    "I10C": "http://hl7.org/fhir/sid/icd-10-cm",
    "ICD10CM": "http://hl7.org/fhir/sid/icd-10-cm",
    "I10P": "http://www.cms.gov/Medicare/Coding/ICD10",
    "I9": "http://hl7.org/fhir/sid/icd-9-cm",
    "I9C": "http://hl7.org/fhir/sid/icd-9-cm",
    "I9CDX": "http://hl7.org/fhir/sid/icd-9-cm",
    "CVX": "http://hl7.org/fhir/sid/cvx",
    "MVX": "http://hl7.org/fhir/sid/mvx",
    "NDC": "http://hl7.org/fhir/sid/ndc",
    "RXNORM": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "RXN": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "UCUM": "http://unitsofmeasure.org",
    "CPT": "http://www.ama-assn.org/go/cpt",
    "C4": "http://www.ama-assn.org/go/cpt",
    "C5": "http://www.ama-assn.org/go/cpt",
    "HCPCS": "urn:oid:2.16.840.1.113883.6.285",
    "HPC": "urn:oid:2.16.840.1.113883.6.285",
    "ISO3166": "urn:iso:std:iso:3166",
    "ISO3166_1": "urn:iso:std:iso:3166",
    "ISO3166-1": "urn:iso:std:iso:3166",
    "ISO3166_2": "urn:iso:std:iso:3166:-2",
    "ISO639": "urn:ietf:bcp:47",
    "ISO+": "urn:iso:std:iso:11073:10101",
    "UPC": "urn:oid:2.16.840.1.113883.6.55",
    "NUCC": "http://nucc.org/provider-taxonomy",
    "CDCREC": "urn:oid:2.16.840.1.113883.6.238",
    "NCIT": "http://ncimeta.nci.nih.gov",
    "UMLS": "http://www.nlm.nih.gov/research/umls",
    "DCM": "http://dicom.nema.org/resources/ontology/DCM",
}

_TABLE = re.compile(r"^(?:HL7|HL)?(\d{4})$")
_URI_UNSAFE = re.compile(r"[^A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]")


def code_system(name: str, ctx: Context | None = None) -> str | None:
    """The FHIR system URI for a coding-system name (CWE.3): known names, ``HL7nnnn`` tables,
    URIs and OIDs as given, anything else under the configured local base."""
    if not name:
        return None
    return _code_system(name, ctx.code_system_base if ctx is not None else "urn:id:")


@lru_cache(maxsize=2048)
def _code_system(name: str, base: str) -> str | None:
    name = name.strip()
    if not name:
        return None
    known = CODE_SYSTEMS.get(name.upper())
    if known:
        return known
    m = _TABLE.match(name.upper())
    if m:
        return V2_CS + m.group(1)
    if name.startswith(("http://", "https://", "urn:")):
        return _URI_UNSAFE.sub("_", name)
    if re.fullmatch(r"\d+(\.\d+)+", name):
        return "urn:oid:" + name
    return base + _URI_UNSAFE.sub("_", name)


@lru_cache(maxsize=1024)
def _external_system(name: str) -> bool:
    """True when the coding-system name (CWE.3) names a standard terminology, a URI or an OID,
    whose codes must not be read as v2 table codes; False for HL7 tables and local names."""
    if not name:
        return False
    name = name.strip()
    if name.upper() in CODE_SYSTEMS:
        return True
    return name.startswith(("http://", "https://", "urn:")) or re.fullmatch(r"\d+(\.\d+)+", name) is not None


def lookup(vocab: str | None, code: str) -> tuple[str, str, str] | None:
    """Translate ``code`` with the IG concept map ``vocab`` (case-insensitive fallback)."""
    if not vocab or not code:
        return None
    table = VOCAB.get(vocab)
    if table is None:
        return None
    hit = table.get(code)
    if hit is None:
        hit = table.get(code.upper())
    return hit


def v2_display(table: str, code: str) -> str:
    """The v2 text of ``code`` in HL7 table ``table`` ('' when unknown)."""
    return V2_TABLES.get(table, {}).get(code, "")


def fhir_code(text: str) -> str:
    """``text`` as a FHIR code: no leading or trailing whitespace, single inner spaces ('' when
    nothing is left)."""
    return " ".join(text.split())


def coding(code: str, system: str | None = None, display: str | None = None) -> Json:
    """A Coding dict with only the parts that are valued."""
    out: Json = {}
    if system:
        out["system"] = system
    if code:
        code = fhir_code(code)
        if code:
            out["code"] = code
    if display:
        out["display"] = display
    return out


# --------------------------------------------------------------------------- coded datatypes

_WIDTH = 24


_PAD = [""] * _WIDTH


def comps(v: Value, ctx: Context) -> list[str]:
    """The components of a field repetition, decoded (first sub-component of each), 1-based and
    padded: ``comps(v, ctx)[5]`` is component 5 or ``""``. One split instead of one per read.
    For a component (``v.level`` 1, e.g. a CWE sent inside one component) the parts are its
    sub-components."""
    d = ctx.delimiters
    raw = v.raw
    esc = d.escape
    if v.level:
        out = [
            "",
            *(unescape(p, d, ctx.charset) if esc and esc in p else p for p in raw.split(d.subcomponent)),
        ]
    elif d.subcomponent not in raw and not (esc and esc in raw):
        out = ["", *raw.split(d.component)]
    else:
        out = [""]
        for part in raw.split(d.component):
            if d.subcomponent in part:
                part = part.split(d.subcomponent, 1)[0]
            if esc and esc in part:
                part = unescape(part, d, ctx.charset)
            out.append(part)
    if len(out) < _WIDTH:
        out += _PAD[len(out) :]
    return out


def cwe_codeable_concept(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """CWE/CE/CNE/CF -> CodeableConcept (IG ``CWE[CodeableConcept]``): up to three codings, text
    from CWE.9 (or the display when the value has no code). With a vocabulary map, a code from
    the map's v2 table becomes the mapped FHIR coding, and the original v2 coding follows it."""
    c = comps(v, ctx)
    codings: list[Json] = []
    for code_i, disp_i, sys_i, ver_i in ((1, 2, 3, 7), (4, 5, 6, 8), (10, 11, 12, 13)):
        code = c[code_i]
        display = c[disp_i]
        if not code and not display:
            continue
        sys_name = c[sys_i]
        # Every coding of the value (the alternate ones too) is translated when it is in the
        # map's v2 table or a local system (senders put table codes under local names, e.g.
        # 'L' or 'HL7nnnn'); a code of a known external system (LOINC, an OID) is not.
        mapped = lookup(vocab, code) if vocab and code and not _external_system(sys_name) else None
        if mapped is not None:
            cd = coding(mapped[0], mapped[2], mapped[1] or display)
            keep_own = bool(sys_name) and code != mapped[0]
            if c[ver_i] and not keep_own:
                cd["version"] = c[ver_i]  # IG CWE.7/.8/.13 -> coding[n].version
            if cd not in codings:
                codings.append(cd)
            if keep_own:
                cd = coding(code, code_system(sys_name, ctx), display)
                if c[ver_i]:
                    cd["version"] = c[ver_i]
                codings.append(cd)
            continue
        if not code:
            continue
        cd = coding(code, code_system(sys_name, ctx), display)
        version = c[ver_i]
        if version:
            cd["version"] = version
        codings.append(cd)
    out: Json = {}
    if codings:
        out["coding"] = codings
    text = c[9] or (c[2] if not codings else "")
    if text:
        out["text"] = text
    return out or None


#: ISO 639-2 (three-letter, HL7 table 0296's usual content) -> the BCP 47 codes the IG's
#: PrimaryLanguage map lists.
ISO639_2: dict[str, str] = {
    "ara": "ar", "ben": "bn", "ces": "cs", "cze": "cs", "dan": "da", "deu": "de", "ger": "de",
    "ell": "el", "gre": "el", "eng": "en", "spa": "es", "fin": "fi", "fra": "fr", "fre": "fr",
    "fry": "fy", "hin": "hi", "hrv": "hr", "ita": "it", "jpn": "ja", "kor": "ko", "nld": "nl",
    "dut": "nl", "nor": "no", "pan": "pa", "pol": "pl", "por": "pt", "rus": "ru", "srp": "sr",
    "swe": "sv", "tel": "te", "zho": "zh", "chi": "zh",
}  # fmt: skip


def language_codeable_concept(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """CWE language (PID-15, NK1-20) -> CodeableConcept coded in BCP 47 (IG PrimaryLanguage map),
    keeping the sender's coding when it is not BCP 47 itself."""
    cc = cwe_codeable_concept(v, ctx)
    code = v.get(1)
    bcp = code if lookup("PrimaryLanguage", code) else ISO639_2.get(code.lower())
    mapped = lookup("PrimaryLanguage", bcp or "")
    if cc is None or mapped is None:
        return cc
    first = coding(mapped[0], mapped[2], mapped[1])
    rest = [c for c in cc.get("coding", []) if c.get("code") != mapped[0]]
    cc["coding"] = [first, *rest]
    return cc


def cwe_coding(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """CWE -> Coding (IG ``CWE[Coding]``), translated with ``vocab`` when it maps the code."""
    c = comps(v, ctx)
    code = c[1]
    mapped = lookup(vocab, code)
    if mapped is not None:
        return coding(mapped[0], mapped[2], mapped[1] or c[2])
    if not code:
        return None
    cd = coding(code, code_system(c[3], ctx), c[2])
    if c[7]:
        cd["version"] = c[7]
    return cd


def cwe_code(v: Value, ctx: Context, vocab: str | None = None) -> str | None:
    """CWE/ID/IS -> code (IG ``CWE[code]``): the mapped FHIR code, or the v2 code without a map;
    the alternate code (CWE.4) when CWE.1 is empty.

    A required FHIR code binding with no match gives None rather than an invalid code.
    """
    code = v.get(1) or v.get(4)
    if not code:
        return None
    mapped = lookup(vocab, code)
    if mapped is not None:
        return mapped[0]
    return None if vocab else code


def id_coding(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """ID/IS -> Coding (IG ``ID[Coding]``)."""
    return cwe_coding(v, ctx, vocab)


def id_codeable_concept(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """ID/IS -> CodeableConcept (IG ``ID[CodeableConcept]``)."""
    c = cwe_coding(v, ctx, vocab)
    return {"coding": [c]} if c else None


def id_boolean(v: Value, ctx: Context, vocab: str | None = None) -> bool | None:
    """ID (table 0136 Y/N) -> boolean (IG ``ID[boolean]``)."""
    code = v.get(1).upper()
    if code == "Y":
        return True
    if code == "N":
        return False
    return None


def st_string(v: Value, ctx: Context, vocab: str | None = None) -> str | None:
    """ST/ID/IS/TX/FT -> string (the first component, decoded)."""
    return v.get(1).strip() or None


def cwe_string(v: Value, ctx: Context, vocab: str | None = None) -> str | None:
    """CWE -> string (IG ``CWE[string]``): the original text (CWE.9), else the text (CWE.2); a
    value sent as a code only keeps its code rather than being lost."""
    c = comps(v, ctx)
    return (c[9] or c[2] or c[1]).strip() or None


def st_text(v: Value, ctx: Context, vocab: str | None = None) -> str | None:
    """FT/TX -> string, keeping every component (formatted text may contain ``^``)."""
    return v.text().strip() or None


def st_codeable_concept(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """ST -> CodeableConcept.text (IG ``ST[CodeableConcept]``)."""
    text = v.get(1).strip()
    return {"text": text} if text else None


def nm_decimal(v: Value, ctx: Context, vocab: str | None = None) -> float | int | None:
    """NM -> decimal/integer (None when not a number)."""
    return number(v.get(1))


def nm_positive_int(v: Value, ctx: Context, vocab: str | None = None) -> int | None:
    """NM -> positiveInt (IG ``NM[positiveInt]``)."""
    return integer(v.get(1), 1)


def nm_unsigned_int(v: Value, ctx: Context, vocab: str | None = None) -> int | None:
    """NM -> unsignedInt."""
    return integer(v.get(1), 0)


def nm_integer(v: Value, ctx: Context, vocab: str | None = None) -> int | None:
    """NM -> integer."""
    return integer(v.get(1))


@lru_cache(maxsize=4096)
def number(text: str) -> float | int | None:
    """A decimal from an NM value, or None."""
    text = text.strip()
    if not text:
        return None
    try:
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        f = float(text)
    except ValueError:
        return None
    if f != f or f in (float("inf"), float("-inf")):
        return None
    return f


#: FHIR integer, positiveInt and unsignedInt are 32-bit signed.
INT_MAX = 2**31 - 1


def integer(text: str, minimum: int = -INT_MAX - 1) -> int | None:
    """An NM that is a FHIR integer of at least ``minimum`` (1 for positiveInt, 0 for
    unsignedInt) and within 32 bits, or None."""
    n = number(text)
    return n if isinstance(n, int) and minimum <= n <= INT_MAX else None


def dtm_datetime(v: Value, ctx: Context, vocab: str | None = None) -> str | None:
    """DTM/TS -> dateTime (IG ``DTM[dateTime]``; see :func:`dtm`)."""
    return dtm(v.get(1), ctx.default_tz)


def dtm_date(v: Value, ctx: Context, vocab: str | None = None) -> str | None:
    """DTM/DT -> date."""
    return dtm(v.get(1), None, date_only=True)


def dtm_instant(v: Value, ctx: Context, vocab: str | None = None) -> str | None:
    """DTM -> instant (None when the value has no time or zone)."""
    return instant(v.get(1), ctx.default_tz)


def dr_period(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """DR -> Period (IG ``DR[Period]``)."""
    out: Json = {}
    start = dtm(v.get(1), ctx.default_tz)
    end = dtm(v.get(2), ctx.default_tz)
    if start:
        out["start"] = start
    if end:
        out["end"] = end
    return out or None


def cq_quantity(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """CQ -> Quantity (IG ``CQ[Quantity]``)."""
    value = number(v.get(1))
    if value is None:
        return None
    q: Json = {"value": value}
    unit = v.component(2)
    if unit.get(1) or unit.get(2):  # units as text only ('54^&lbs') are still the unit
        q.update(_unit(unit, ctx))
    return q


def _unit(unit: Value, ctx: Context) -> Json:
    """CWE units (as a component Value) -> Quantity unit/system/code."""
    code = fhir_code(unit.get(1))
    text = unit.get(2) or code
    out: Json = {"unit": text} if text else {}
    sys_name = unit.get(3)
    if sys_name and code:
        system = code_system(sys_name, ctx)
        if system:
            out["system"] = system
            out["code"] = code
    return out


def cwe_quantity_unit(v: Value, ctx: Context) -> Json:
    """CWE units (a whole field repetition) -> Quantity unit/system/code (IG ``CWE[Quantity]``).

    Memoised per message (the same unit recurs on every OBX): callers copy the result into
    their Quantity and never change it."""
    key = ("unit", v.raw)
    hit = ctx.memo.get(key)
    if hit is None:
        hit = ctx.memo[key] = _cwe_quantity_unit(v, ctx)
    return hit


def _cwe_quantity_unit(v: Value, ctx: Context) -> Json:
    c = comps(v, ctx)
    code = fhir_code(c[1])
    if not code:
        return {"unit": c[2]} if c[2] else {}  # a unit given as text only
    out: Json = {"unit": c[2] or code}
    if c[3]:
        system = code_system(c[3], ctx)
        if system:
            out["system"] = system
            out["code"] = code
    return out


# ----------------------------------------------------------------------- names and contacts


_HUMANNAME = "http://hl7.org/fhir/StructureDefinition/humanname-"
#: IG ``FN[HumanName]``: FN.2..FN.5, the parts of a family name, as extensions of ``family``.
_FAMILY_PARTS = ((2, "own-prefix"), (3, "own-name"), (4, "partner-prefix"), (5, "partner-name"))


def family_parts(v: Value, pos: int, ctx: Context) -> Json | None:
    """The ``_family`` element for the FN at component ``pos`` of ``v`` (IG ``FN[HumanName]``:
    own surname prefix, own surname, partner's prefix and surname as humanname extensions), or
    None when the FN has no sub-components beyond the surname."""
    if v.level or ctx.delimiters.subcomponent not in v.raw:
        return None  # a name sent inside one component has no room for the parts
    exts: list[Json] = []
    for sub, name in _FAMILY_PARTS:
        text = v.get(pos, sub)
        if text:
            exts.append({"url": _HUMANNAME + name, "valueString": text})
    return {"extension": exts} if exts else None


def xpn_human_name(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """XPN -> HumanName (IG ``XPN[HumanName]``)."""
    c = comps(v, ctx)
    out: Json = {}
    family = c[1]
    if family:
        out["family"] = family
        parts = family_parts(v, 1, ctx)
        if parts is not None:
            out["_family"] = parts
    given = [g for g in (c[2], c[3]) if g]
    if given:
        out["given"] = given
    prefix = c[5]
    if prefix:
        out["prefix"] = [prefix]
    suffix = [s for s in (c[4], c[6], c[14]) if s]
    if suffix:
        out["suffix"] = suffix
    use = lookup("NameType", c[7])
    if use:
        out["use"] = use[0]
    period = _period(c, 12, 13, ctx) or (dr_period(v.component(10), ctx) if c[10] else None)
    if period:
        out["period"] = period
    order = lookup("NameAssemblyOrder", c[11])
    if order:
        out["extension"] = [
            {"url": "http://hl7.org/fhir/StructureDefinition/humanname-assembly-order", "valueCode": order[0]}
        ]
    if not (family or given):
        return None
    return out


def xpn_human_names(v: Value, ctx: Context, vocab: str | None = None) -> list[Json] | None:
    """XPN -> HumanNames, where the target element repeats (IG ``XPN[HumanName]``): the name,
    then XPN.15 (called by) as a second name with use ``nickname``."""
    name = xpn_human_name(v, ctx, vocab)
    d = ctx.delimiters
    called = v.get(15).strip() if v.raw.count(d.component) >= 14 else ""
    if not called:
        return [name] if name is not None else None
    nick: Json = {"given": [called], "use": "nickname"}
    return [name, nick] if name is not None else [nick]


def _period(c: list[str], start_pos: int, end_pos: int, ctx: Context) -> Json | None:
    if not (c[start_pos] or c[end_pos]):
        return None
    out: Json = {}
    start = dtm(c[start_pos], ctx.default_tz)
    end = dtm(c[end_pos], ctx.default_tz)
    if start:
        out["start"] = start
    if end:
        out["end"] = end
    return out or None


def xpn_string(v: Value, ctx: Context, vocab: str | None = None) -> str | None:
    """XPN -> string (IG ``XPN[string]``): the parts joined by spaces, in the order XPN.11 (name
    assembly order, table 0444) gives: family first for 'F', else given names first."""
    c = comps(v, ctx)
    # Table 0444: F is prefix family middle given suffix; G (and no order) prefix given middle
    # family suffix.
    family_first = c[11] == "F"
    parts = [c[5], c[1], c[3], c[2], c[4], c[6]] if family_first else [c[5], c[2], c[3], c[1], c[4], c[6]]
    text = " ".join(p for p in parts if p)
    return text or None


def xad_address(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """XAD -> Address (IG ``XAD[Address]``)."""
    c = comps(v, ctx)
    out: Json = {}
    lines = [x for x in (c[1], v.get(1, 2), v.get(1, 3), c[2], c[19]) if x]
    if lines:
        out["line"] = lines
    for pos, key in ((3, "city"), (4, "state"), (5, "postalCode"), (6, "country")):
        text = c[pos]
        if text:
            out[key] = text
    # XAD.9/XAD.10 are CWEs (parts as sub-components): a text without a code ('&W') counts.
    has_subs = ctx.delimiters.subcomponent in v.raw
    district = _cwe_string_sub(v, 9) if has_subs else c[9]
    if district:
        out["district"] = district
    kind = c[7]
    if kind in ("M", "SH"):
        t = lookup("AddressType[Type]", kind)
        if t:
            out["type"] = t[0]
    elif kind == "HV":
        # IG XAD.7 "HV" (vacation home), which FHIR's address use lacks: the ISO 21090 use.
        out["extension"] = [{"url": _AD_USE, "valueCode": "HV"}]
    elif kind:
        u = lookup("AddressType[Use]", kind)
        if u:
            out["use"] = u[0]
    period = _period(c, 13, 14, ctx) or (dr_period(v.component(12), ctx) if c[12] else None)
    if period:
        out["period"] = period
    tract = _cwe_string_sub(v, 10) if has_subs else c[10]
    if tract:
        out.setdefault("extension", []).append(
            {"url": "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-censusTract", "valueString": tract}
        )
    return out or None


_AD_USE = "http://hl7.org/fhir/StructureDefinition/iso21090-AD-use"


def _cwe_string_sub(v: Value, pos: int) -> str:
    """IG ``CWE[string]`` of the CWE component ``pos`` (parts as sub-components): the original
    text (CWE.9), else the text (CWE.2), else the code (XAD.9 was a plain IS code before v2.7)."""
    return v.get(pos, 9) or v.get(pos, 2) or v.get(pos, 1)


_EMAIL_TYPES = frozenset({"Internet", "X.400", "NET"})


def xtn_contact_point(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """XTN -> ContactPoint (IG ``XTN[ContactPoint]``)."""
    c = comps(v, ctx)
    equip = c[3]
    out: Json = {}
    if equip in _EMAIL_TYPES or (not equip and c[4] and not c[1] and not c[7]):
        value = c[4] or c[1]
        system = "email"
    else:
        value = c[12] or c[1]
        if not value and c[7]:
            parts = []
            if c[5]:
                parts.append("+" + c[5])
            if c[6]:
                parts.append(c[6])
            parts.append(c[7])
            value = " ".join(parts)
            if c[8]:
                value += " X" + c[8]
        mapped = lookup("TelecommunicationEquipmentType", equip)
        system = mapped[0] if mapped else ("phone" if value else "")
        if system == "mobile":
            # The IG maps CP to contact-point-use "mobile" (the system is phone); XTN.2, the
            # field the IG maps to use, wins when it says whose number it is (PRN, WPN).
            system = "phone"
            if lookup("TelecommunicationUseCode", c[2]) is None:
                out["use"] = "mobile"
        if not value and c[4]:
            value = c[4]
            system = "email"
    if not value:
        return None
    if system:
        out["system"] = system
    out["value"] = value
    use = lookup("TelecommunicationUseCode", c[2])
    if use and "use" not in out:
        out["use"] = use[0]
    period = _period(c, 13, 14, ctx)
    if period:
        out["period"] = period
    rank = integer(c[18], 1)
    if rank is not None:
        out["rank"] = rank
    if system != "email" and (c[5] or c[6] or c[7] or c[8]):
        # IG XTN.5..8: the parts of a structured number as contactpoint extensions.
        out["extension"] = [
            {"url": _CONTACTPOINT + name, "valueString": c[pos]} for pos, name in _NUMBER_PARTS if c[pos]
        ]
    return out


_CONTACTPOINT = "http://hl7.org/fhir/StructureDefinition/contactpoint-"
_NUMBER_PARTS = ((5, "country"), (6, "area"), (7, "local"), (8, "extension"))


# ------------------------------------------------------------------------------ identifiers


def hd_system(v: Value, ctx: Context, *, offset: int = 0) -> str | None:
    """HD -> uri (IG ``HD[uri]``): an ISO OID, UUID or URI from HD.2/HD.3, else the namespace
    id under the configured base. ``offset`` reads an HD embedded as components (e.g. CX.4 is
    sub-components, XCN.9 too: use :func:`hd_system_of`)."""
    ns, uid, kind = v.get(1 + offset), v.get(2 + offset), v.get(3 + offset).upper()
    return _hd_uri(ns, uid, kind, ctx)


def hd_system_of(comp: Value, ctx: Context) -> str | None:
    """HD given as one component (parts are sub-components) -> uri."""
    raw = comp.raw
    d = ctx.delimiters
    if d.escape and d.escape in raw:
        return _hd_uri(comp.get(1), comp.get(2), comp.get(3).upper(), ctx)
    # One split instead of three reads (hot path: every identifier's assigning authority).
    parts = raw.split(d.subcomponent, 3)
    parts += _PAD[: 3 - len(parts)] if len(parts) < 3 else []
    return _hd_uri(parts[0], parts[1], parts[2].upper(), ctx)


def _hd_uri(ns: str, uid: str, kind: str, ctx: Context) -> str | None:
    return hd_uri(ns, uid, kind, ctx.system_base)


@lru_cache(maxsize=4096)
def hd_uri(ns: str, uid: str, kind: str, system_base: str) -> str | None:
    """The uri of an HD from its namespace id, universal id and (upper-case) id type, with
    ``system_base`` as the prefix of local namespaces (assigning authorities recur: cached)."""
    if uid:
        if kind == "ISO" or re.fullmatch(r"\d+(\.\d+)+", uid):
            return "urn:oid:" + uid
        if kind in ("UUID", "GUID"):  # table 0301: GUID is "same as UUID"
            return "urn:uuid:" + uid.lower()
        if kind in ("URI", "URL") or uid.startswith(("http://", "https://", "urn:")):
            return _URI_UNSAFE.sub("_", uid)
        if not ns:
            return system_base + _URI_UNSAFE.sub("_", uid)
    if ns:
        if ns.startswith(("http://", "https://", "urn:")):
            return _URI_UNSAFE.sub("_", ns)
        return system_base + _URI_UNSAFE.sub("_", ns)
    return None


def _identifier_type(code: str) -> Json | None:
    if not code:
        return None
    mapped = lookup("IdentifierType", code)
    if mapped:
        return {"coding": [coding(mapped[0], mapped[2], mapped[1])]}
    return {"coding": [coding(code, V2_CS + "0203", v2_display("0203", code))]}


def cx_identifier(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """CX -> Identifier (IG ``CX[Identifier]``): value, system from the assigning authority
    (CX.4), type from CX.5 (table 0203), period from CX.7/CX.8, assigner from CX.4 / CX.6."""
    c = comps(v, ctx)
    value = c[1]
    if not value:
        return None
    if v.level != 0:
        return _cx_identifier(v, ctx, c)
    # Everything but the value comes from CX.2 onwards, which recurs (the same authority and
    # type on every identifier of a sender): kept across messages as JSON, rebuilt in order.
    d = ctx.delimiters
    raw = v.raw
    cut = raw.find(d.component)
    key = ("CX", raw[cut:] if cut >= 0 else "")
    kept = ctx.recipes.get(key)
    if kept is None:
        out = _cx_identifier(v, ctx, c)
        facility = _cx_facility(v)
        kept = (
            out.get("system"),
            *(orjson.dumps(out[k]) if k in out else None for k in ("type", "period", "extension")),
            facility.raw if facility is not None else None,
        )
        ctx.keep(key, kept)
        return out
    system, id_type, period, ext, facility_raw = kept
    out = {}
    if system:
        out["system"] = system
    out["value"] = value
    if id_type is not None:
        out["type"] = orjson.loads(id_type)
    if period is not None:
        out["period"] = orjson.loads(period)
    if ext is not None:
        out["extension"] = orjson.loads(ext)
    if facility_raw is not None:
        ref = ctx.assigner(Value(facility_raw, d, 1, ctx.charset))
        if ref:
            out["assigner"] = ref
    return out


def _cx_facility(v: Value) -> Value | None:
    """The assigning authority (CX.4) or facility (CX.6) that makes a CX's assigner."""
    authority = v.component(4)
    facility = authority if (authority.get(1) or authority.get(2)) else v.component(6)
    return facility if facility.get(1) or facility.get(2) else None


def _cx_identifier(v: Value, ctx: Context, c: list[str]) -> Json:
    value = c[1]
    out: Json = {}
    authority = v.component(4)
    system = hd_system_of(authority, ctx) if authority else None
    if system:
        out["system"] = system
    out["value"] = value
    id_type = _identifier_type(c[5])
    if id_type:
        out["type"] = id_type
    period = _period(c, 7, 8, ctx)
    if period:
        out["period"] = period
    if c[2]:
        out["extension"] = [
            {"url": "http://hl7.org/fhir/StructureDefinition/identifier-checkDigit", "valueString": c[2]}
        ]
    # IG: CX.4 -> assigner(Organization) through HD[Organization]; CX.6 when CX.4 is empty.
    facility = _cx_facility(v)
    if facility is not None:
        ref = ctx.assigner(facility)
        if ref:
            out["assigner"] = ref
    return out


def dln_identifier(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """DLN -> Identifier (IG ``DLN[Identifier]``): licence number, the issuing authority's system
    (DLN.2 as a uri), expiry as period.end, type DL."""
    c = comps(v, ctx)
    if not c[1]:
        return None
    out: Json = {}
    system = code_system(c[2], ctx) if c[2] else None
    if system:
        out["system"] = system
    out["value"] = c[1]
    out["type"] = {"coding": [coding("DL", V2_CS + "0203", "Driver's license number")]}
    end = dtm(c[3], ctx.default_tz)
    if end:
        out["period"] = {"end": end}
    return out


def ei_identifier(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """EI -> Identifier (IG ``EI[Identifier-Extension]``): EI.1 value, system from EI.2-EI.4."""
    c = comps(v, ctx)
    value = c[1]
    if not value:
        return None
    out: Json = {}
    system = _hd_uri(c[2], c[3], c[4].upper(), ctx)
    if system:
        out["system"] = system
    out["value"] = value
    return out


def ei_identifier_system(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """EI -> Identifier (IG ``EI[Identifier-System]``): as :func:`ei_identifier`, plus the
    universal id type (EI.4, table 0301) as ``type``, as the IG's HD maps type a universal id.
    An EI with an assigning authority but no EI.1 still names the identifier's system."""
    out = ei_identifier(v, ctx)
    if out is None:
        c = comps(v, ctx)
        system = _hd_uri(c[2], c[3], c[4].upper(), ctx) if not c[1] and (c[2] or c[3]) else None
        if system is None:
            return None
        out = {"system": system}
    kind = v.get(4)
    if kind:
        mapped = lookup("UniversalIDType", kind) or lookup("UniversalIDType", kind.upper())
        if mapped:
            out["type"] = {"coding": [coding(mapped[0], mapped[2], mapped[1])]}
    return out


def ei_udi_carrier(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """EI -> Device.udiCarrier (IG ``EI[Device-udiCarrier]``): EI.1 is the device identifier
    (the IG's assigning-authority extensions are undefined, so EI.2-EI.4 are not kept)."""
    value = v.get(1).strip()
    return {"deviceIdentifier": value} if value else None


def pln_identifier(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """PLN -> Identifier (IG ``PLN[Identifier]``): the practitioner licence number, its type
    (PLN.2, table 0338 via PractitionerIDNumberType) and expiry (PLN.4) as ``period.end``."""
    c = comps(v, ctx)
    if not c[1]:
        return None
    out: Json = {"value": c[1]}
    if c[2]:
        mapped = lookup("PractitionerIDNumberType", c[2])
        cd = coding(mapped[0], mapped[2], mapped[1]) if mapped else coding(c[2], V2_CS + "0338")
        out["type"] = {"coding": [cd]}
    end = dtm(c[4], ctx.default_tz)
    if end:
        out["period"] = {"end": end}
    return out


def eip_identifiers(v: Value, ctx: Context) -> list[Json]:
    """EIP -> placer and filler Identifiers (IG ``EIP[Identifier-*AssignedIdentifier]``)."""
    out: list[Json] = []
    for pos, kind in ((1, "PGN"), (2, "FGN")):
        comp = v.component(pos)
        if comp.get(1):
            ident: Json = {}
            system = _hd_uri(comp.get(2), comp.get(3), comp.get(4).upper(), ctx)
            if system:
                ident["system"] = system
            ident["value"] = comp.get(1)
            ident["type"] = {"coding": [coding(kind, V2_CS + "0203")]}
            out.append(ident)
    return out


def hd_identifier(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """HD -> Identifier (IG ``HD[Identifier]``): the namespace id, or the universal id as a URI."""
    if v.get(2):
        kind = v.get(3)
        uri = _hd_uri("", v.get(2), kind.upper(), ctx)
        if not uri:
            return None
        out: Json = {"system": "urn:ietf:rfc:3986", "value": uri}
        id_type = _universal_id_type(kind.strip()) if kind else None
        if id_type:
            out["type"] = id_type  # IG HD.3 -> type (ID[CodeableConcept], table 0301)
        return out
    if v.get(1):
        return {"value": v.get(1)}
    return None


def xon_string(v: Value, ctx: Context, vocab: str | None = None) -> str | None:
    """XON -> string (IG ``XON[string]``): the organisation name, else its identifier (XON.10)."""
    return v.get(1) or v.get(10) or None


# ------------------------------------------------------------------ small maps (no resource)


def cx_string(v: Value, ctx: Context, vocab: str | None = None) -> str | None:
    """CX -> string (IG ``CX[string]``): the id number (CX.1)."""
    return v.get(1).strip() or None


def dr_datetime(v: Value, ctx: Context, vocab: str | None = None) -> str | None:
    """DR -> dateTime (IG ``DR[dateTime]``): the start of the range (DR.1)."""
    return dtm(v.get(1), ctx.default_tz)


def cq_decimal(v: Value, ctx: Context, vocab: str | None = None) -> float | int | None:
    """CQ -> decimal (IG ``CQ[decimal]``): the quantity (CQ.1) without its units."""
    return number(v.get(1))


def cq_code(v: Value, ctx: Context, vocab: str | None = None) -> str | None:
    """CQ -> code (IG ``CQ[code]``): the code of the units (CQ.2)."""
    return fhir_code(v.get(2)) or None


def nm_quantity(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """NM -> Quantity (IG ``NM[Quantity]``): the number as the value; units come from another
    field (OBX-6, through ``CWE[Quantity]``)."""
    value = number(v.get(1))
    return {"value": value} if value is not None else None


def nr_range(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """NR -> Range (IG ``NR[Range]``): NR.1 the low value, NR.2 the high value."""
    low, high = number(v.get(1)), number(v.get(2))
    out: Json = {}
    if low is not None:
        out["low"] = {"value": low}
    if high is not None:
        out["high"] = {"value": high}
    return out or None


def cwe_quantity(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """CWE units -> Quantity (IG ``CWE[Quantity]``): the unit (CWE.2, else CWE.1), and the code
    and system when CWE.1 and CWE.3 are both valued; a Quantity without a value, which the caller
    completes (e.g. with ``NM[Quantity]``)."""
    return _cwe_quantity_unit(v, ctx) or None


def cwe_uri(v: Value, ctx: Context, vocab: str | None = None) -> str | None:
    """CWE -> uri (IG ``CWE[uri]``): the identifier (CWE.1), else the alternate one (CWE.4);
    None when the text cannot be a uri (it has whitespace)."""
    text = v.get(1).strip() or v.get(4).strip()
    if not text or any(ch.isspace() for ch in text):
        return None
    return text


def cwe_annotation(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """CWE -> Annotation (IG ``CWE[Annotation]``): the whole value, delimiters included, as the
    text."""
    text = v.text().strip()
    return {"text": text} if text else None


def ei_coding(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """EI -> Coding (IG ``EI[Coding]``): EI.1 the code, the assigning authority the system (the
    namespace EI.2 as a uri, as ``HD[uri]`` reads it; the universal id EI.3/EI.4 when given)."""
    c = comps(v, ctx)
    if not c[1]:
        return None
    out = coding(c[1], _hd_uri(c[2], c[3], c[4].upper(), ctx))
    return out if "code" in out else None


def ei_identifier_value(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """EI -> Identifier (IG ``EI[Identifier-DefaultAssigner]``): the value (EI.1) only; the
    assigner is the one the field implies, which the caller adds."""
    value = v.get(1).strip()
    return {"value": value} if value else None


def ei_identifier_organization(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """EI -> Identifier (IG ``EI[Identifier-Organization]``): the value (EI.1), and the assigning
    authority (EI.2-EI.4, an HD) as the assigner Organization (``HD[Organization]``)."""
    value = v.get(1).strip()
    if not value:
        return None
    out: Json = {"value": value}
    if v.get(2) or v.get(3):
        d = ctx.delimiters
        sep = d.component if v.level == 0 else d.subcomponent
        authority = Value(sep.join(v.raw.split(sep)[1:4]), d, v.level, ctx.charset)
        assigner = ctx.assigner(authority)
        if assigner:
            out["assigner"] = assigner
    return out


def id_universal_id(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """ID -> CodeableConcept (IG ``ID[CodeableConcept-UniversalID]``): a universal id type (HD.3,
    EI.4; HL7 table 0301) coded in v2-0301."""
    return _universal_id_type(v.get(1).strip())


def _universal_id_type(code: str) -> Json | None:
    if not code:
        return None
    mapped = lookup("UniversalIDType", code)
    cd = coding(mapped[0], mapped[2], mapped[1]) if mapped else coding(code, V2_CS + "0301")
    return {"coding": [cd]}


def msg_code(v: Value, ctx: Context, vocab: str | None = None) -> str | None:
    """MSG -> code (IG ``MSG[code]``): the trigger event (MSG.2)."""
    return fhir_code(v.get(2)) or None


#: IG ``PT[Meta]``: (component, HL7 table, concept map) of each tag.
_PT_TAGS = ((1, "0103", "ProcessingID"), (2, "0207", "ProcessingMode"))


def pt_meta(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """PT -> Meta (IG ``PT[Meta]``): the processing id (PT.1, table 0103) and the processing mode
    (PT.2, table 0207) as tags."""
    tags: list[Json] = []
    for pos, table, name in _PT_TAGS:
        code = v.get(pos).strip()
        if not code:
            continue
        mapped = lookup(name, code)
        tags.append(coding(mapped[0], mapped[2], mapped[1]) if mapped else coding(code, V2_CS + table))
    return {"tag": tags} if tags else None


#: IG ``SPS[Specimen-Source]``: (component, concept map) of the coded parts.
_SPS_TYPE = (1, "SpecimenType")
_SPS_ADDITIVE = (2, "AdditivePreservative")
_SPS_BODY_SITE = (4, "BodySite")
_SPS_CONDITION = (6, "SpecimenCondition")


def sps_specimen(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """SPS -> the Specimen elements a specimen source gives (IG ``SPS[Specimen-Source]``, OBR-15):
    type (SPS.1), container additive (SPS.2), note (SPS.3), collection body site (SPS.4) and
    condition (SPS.6); the caller merges them into its Specimen."""
    out: Json = {}
    pos, name = _SPS_TYPE
    kind = cwe_codeable_concept(v.component(pos), ctx, name) if v.get(pos) else None
    if kind:
        out["type"] = kind
    pos, name = _SPS_ADDITIVE
    additive = cwe_codeable_concept(v.component(pos), ctx, name) if v.get(pos) else None
    if additive:
        out["container"] = [{"additiveCodeableConcept": additive}]
    note = v.get(3).strip()
    if note:
        out["note"] = [{"text": note}]
    pos, name = _SPS_BODY_SITE
    site = cwe_codeable_concept(v.component(pos), ctx, name) if v.get(pos) else None
    if site:
        out["collection"] = {"bodySite": site}
    pos, name = _SPS_CONDITION
    condition = cwe_codeable_concept(v.component(pos), ctx, name) if v.get(pos) else None
    if condition:
        out["condition"] = [condition]
    return out or None


# ------------------------------------------------------------------------ resource-creating


def xcn_practitioner(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """XCN -> Reference(Practitioner) (IG ``XCN[Practitioner]``)."""
    return ctx.practitioner_from_xcn(v)


def hd_organization(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """HD -> Reference(Organization) (IG ``HD[Organization]``)."""
    return ctx.organization_from_hd(v)


def xon_organization(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """XON -> Reference(Organization) (IG ``XON[Organization]``)."""
    return ctx.organization_from_xon(v)


def pl_location(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """PL -> Reference(Location) (IG ``PL[Location]``): one Location per valued level, linked by
    ``partOf``; the reference is to the most specific level."""
    return ctx.location_from_pl(v)


_LOCATION_PHYSICAL_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"


def hd_location(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """HD -> Reference(Location) (IG ``HD[Location]``)."""
    name = v.get(1)
    if not name:
        return None
    loc: Json = {"resourceType": "Location", "name": name}
    ident = hd_identifier(v, ctx)
    if ident:
        loc["identifier"] = [ident]
    # IG HD[Location]: an HD names a site (a facility).
    loc["physicalType"] = {"coding": [coding("si", _LOCATION_PHYSICAL_TYPE, "Site")]}
    return ctx.add_shared(loc, resource_id("Location", ctx.scope, name, v.get(2)))


def cwe_organization(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """CWE -> Reference(Organization) (IG ``CWE[Organization]``): the code as identifier (its
    system from CWE.3, e.g. MVX for a vaccine manufacturer), the text (else CWE.9) as name."""
    code, name = v.get(1), v.get(2) or v.get(9)
    if not (code or name):
        return None
    org: Json = {"resourceType": "Organization"}
    if code:
        ident: Json = {"value": code}
        system = code_system(v.get(3), ctx) if v.get(3) else None
        if system:
            ident = {"system": system, "value": code}
        org["identifier"] = [ident]
    if name:
        org["name"] = name
    return ctx.add_shared(org, resource_id("Organization", ctx.scope, code, name))


_RFC3986_PREFIX = {"ISO": "urn:oid:", "UUID": "urn:uuid:"}


def hd_device(v: Value, ctx: Context, vocab: str | None = None) -> Json | None:
    """HD -> Reference(Device) (IG ``HD[Device]``, the receiving application of MSH-5): the
    namespace id (HD.1) and the universal id (HD.2, typed by HD.3 as ``HD[Organization]`` types
    it) as identifiers."""
    ns, uid = v.get(1), v.get(2)
    if not (ns or uid):
        return None
    idents: list[Json] = []
    if ns:
        idents.append({"value": ns})
    if uid:
        kind = v.get(3).strip()
        ident: Json = {"value": uid}
        prefix = _RFC3986_PREFIX.get(kind.upper())
        if prefix is not None:  # IG: an ISO or UUID universal id is a URI (urn:oid, urn:uuid)
            value = uid.lower() if prefix == "urn:uuid:" else uid
            ident = {
                "system": "urn:ietf:rfc:3986",
                "value": uid if uid.startswith("urn:") else prefix + value,
            }
        id_type = _universal_id_type(kind)
        if id_type:
            ident["type"] = id_type
        idents.append(ident)
    dev: Json = {"resourceType": "Device", "identifier": idents}
    return ctx.add_shared(dev, resource_id("Device", "HD", ns, uid, v.get(3)))


def _memo(fn: DatatypeMap) -> DatatypeMap:
    """Per-message memo for maps that create resources: the same XCN, XON or PL text in several
    fields or segments (an ordering provider on every OBX) is built once."""

    def wrapper(v: Value, ctx: Context, vocab: str | None = None) -> Any:
        key = (fn, v.raw, v.level)
        # A build being recorded (Context.replay) must add its resources itself: no memo then.
        hit = ctx.memo.get(key) if ctx.recording is None else None
        if hit is None:
            hit = ctx.memo[key] = fn(v, ctx, vocab)
        return hit

    wrapper.__doc__ = fn.__doc__
    return wrapper


#: Results of the coded maps across messages, per (delimiters, charset, code-system base):
#: ``None``, a code, or the JSON bytes of the value. Codes and units recur in every message of a
#: feed; the bytes give each message its own copy (``orjson.loads`` is cheaper than the map).
_CODED: dict[tuple[object, ...], dict[tuple[object, ...], str | bytes | None]] = {}
_CODED_MAX = 8192


def coded_cache(ctx: Context) -> dict[tuple[object, ...], str | bytes | None]:
    """The cross-message cache of coded-map results for ``ctx``'s delimiters, charset and base."""
    key = (ctx.delimiters, ctx.charset, ctx.code_system_base)
    found = _CODED.get(key)
    if found is None or len(found) > _CODED_MAX:
        if len(_CODED) > 32:
            _CODED.clear()
        found = _CODED[key] = {}
    return found


def _shared(fn: DatatypeMap) -> DatatypeMap:
    """Per-message memo for maps whose results are never changed after they are built (coded
    values): a code repeated on every OBX (interpretation N, status F) is built once and the
    same object is placed in each resource. Callers must copy before changing such a value.

    These maps depend only on the value's text, the delimiters, the charset and the code-system
    base, so their results are also kept across messages (see :func:`coded_cache`)."""

    def wrapper(v: Value, ctx: Context, vocab: str | None = None) -> Any:
        # The level is part of the key: the same text is one CWE as a field and another as a
        # component (whose parts are sub-components; see comps).
        key = (fn, v.raw, v.level, vocab)
        memo = ctx.memo
        if key in memo:
            return memo[key]
        coded = ctx.coded
        if key in coded:
            kept = coded[key]
            hit = orjson.loads(kept) if isinstance(kept, bytes) else kept
        else:
            hit = fn(v, ctx, vocab)
            coded[key] = hit if hit is None or isinstance(hit, str) else orjson.dumps(hit)
        memo[key] = hit
        return hit

    wrapper.__doc__ = fn.__doc__
    _SHARED_INNER[wrapper] = fn
    return wrapper


def _pure(fn: DatatypeMap) -> DatatypeMap:
    """Cross-message cache (see :func:`coded_cache`) for coded maps whose callers may change
    the result: each use gets its own copy."""

    def wrapper(v: Value, ctx: Context, vocab: str | None = None) -> Any:
        key = (fn, v.raw, v.level, vocab)
        coded = ctx.coded
        if key in coded:
            kept = coded[key]
            return orjson.loads(kept) if isinstance(kept, bytes) else kept
        hit = fn(v, ctx, vocab)
        coded[key] = hit if hit is None or isinstance(hit, str) else orjson.dumps(hit)
        return hit

    wrapper.__doc__ = fn.__doc__
    return wrapper


def _copied(fn: DatatypeMap) -> DatatypeMap:
    """Per-message memo for maps of people's data (names, addresses, telecoms): NK1 gives them
    to both the RelatedPerson and the Patient.contact. Each use gets its own copy (the JSON is
    kept), so callers may change what they get."""

    def wrapper(v: Value, ctx: Context, vocab: str | None = None) -> Any:
        key = (fn, v.raw, v.level, vocab)
        memo = ctx.memo
        if key in memo:
            kept = memo[key]
            return orjson.loads(kept) if kept is not None else None
        hit = fn(v, ctx, vocab)
        memo[key] = orjson.dumps(hit) if hit is not None else None
        return hit

    wrapper.__doc__ = fn.__doc__
    return wrapper


#: The map inside each :func:`_shared` wrapper (the field-map plans call :func:`shared_raw`).
_SHARED_INNER: dict[DatatypeMap, DatatypeMap] = {}


def shared_inner(fn: DatatypeMap) -> DatatypeMap | None:
    """The map a :func:`_shared` wrapper memoises, or None when ``fn`` is not such a wrapper."""
    return _SHARED_INNER.get(fn)


def shared_raw(fn: DatatypeMap, raw: str, ctx: Context, vocab: str | None) -> Any:
    """What ``_shared(fn)`` gives for a field repetition ``raw``, building the Value only when
    neither this message nor the cross-message cache has the result."""
    key = (fn, raw, 0, vocab)  # a field repetition: level 0, as _shared keys it
    memo = ctx.memo
    if key in memo:
        return memo[key]
    coded = ctx.coded
    if key in coded:
        kept = coded[key]
        hit = orjson.loads(kept) if isinstance(kept, bytes) else kept
    else:
        hit = fn(Value(raw, ctx.delimiters, 0, ctx.charset), ctx, vocab)
        coded[key] = hit if hit is None or isinstance(hit, str) else orjson.dumps(hit)
    memo[key] = hit
    return hit


#: The IG datatype maps this module implements, by IG name.
DATATYPES: dict[str, DatatypeMap] = {
    "CWE[CodeableConcept]": _shared(cwe_codeable_concept),
    "CE[CodeableConcept]": _shared(cwe_codeable_concept),
    "CNE[CodeableConcept]": _shared(cwe_codeable_concept),
    "CF[CodeableConcept]": _shared(cwe_codeable_concept),
    "IS[CodeableConcept]": id_codeable_concept,
    "ID[CodeableConcept]": id_codeable_concept,
    "ST[CodeableConcept]": st_codeable_concept,
    "CWE[Coding]": _shared(cwe_coding),
    "CWE[CodeableConcept-Language]": _pure(language_codeable_concept),
    "ID[Coding]": id_coding,
    "CWE[code]": _shared(cwe_code),
    "ID[code]": _shared(cwe_code),
    "IS[code]": _shared(cwe_code),
    "ID[boolean]": id_boolean,
    "ID[string]": st_string,
    "IS[string]": st_string,
    "ST[string]": st_string,
    "FT[string]": st_text,
    "CWE[string]": cwe_string,
    "NM[decimal]": nm_decimal,
    "NM[positiveInt]": nm_positive_int,
    "NM[unsignedInt]": nm_unsigned_int,
    "NM[integer]": nm_integer,
    "DTM[dateTime]": dtm_datetime,
    "TS[dateTime]": dtm_datetime,
    "DTM[date]": dtm_date,
    "DTM[instant]": dtm_instant,
    "DR[Period]": dr_period,
    "CQ[Quantity]": cq_quantity,
    "XPN[HumanName]": _copied(xpn_human_name),
    "XPN[string]": xpn_string,
    "XAD[Address]": _copied(xad_address),
    "XTN[ContactPoint]": _copied(xtn_contact_point),
    "CX[Identifier]": cx_identifier,
    "EI[Identifier-Extension]": ei_identifier,
    "EI[Identifier-System]": ei_identifier_system,
    "EI[Device-udiCarrier]": ei_udi_carrier,
    "PLN[Identifier]": pln_identifier,
    "DLN[Identifier]": dln_identifier,
    "HD[Identifier]": hd_identifier,
    "XON[string]": xon_string,
    "XCN[Practitioner]": _memo(xcn_practitioner),
    "HD[Organization]": _memo(hd_organization),
    "XON[Organization]": _memo(xon_organization),
    "PL[Location]": _memo(pl_location),
    "HD[Location]": _memo(hd_location),
    "CWE[Organization]": _memo(cwe_organization),
    "CX[string]": cx_string,
    "DR[dateTime]": dr_datetime,
    "CQ[decimal]": cq_decimal,
    "CQ[code]": cq_code,
    "NM[Quantity]": nm_quantity,
    "NR[Range]": nr_range,
    "CWE[Quantity]": cwe_quantity,
    "CWE[uri]": cwe_uri,
    "CWE[Annotation]": cwe_annotation,
    "EI[Coding]": ei_coding,
    "EI[Identifier-DefaultAssigner]": ei_identifier_value,
    "EI[Identifier-Organization]": ei_identifier_organization,
    "ID[CodeableConcept-UniversalID]": id_universal_id,
    "MSG[code]": msg_code,
    "PT[Meta]": pt_meta,
    "SPS[Specimen-Source]": sps_specimen,
    "HD[Device]": _memo(hd_device),
}

#: Maps used instead of :data:`DATATYPES` ones for field-map rows whose element repeats
#: (``name[]``): they return a list of items, each added to the element.
REPEATING: dict[str, DatatypeMap] = {
    "XPN[HumanName]": _copied(xpn_human_names),
}

__all__ = [
    "CODE_SYSTEMS",
    "DATATYPES",
    "code_system",
    "coding",
    "cwe_codeable_concept",
    "cx_identifier",
    "dtm",
    "fhir_code",
    "instant",
    "integer",
    "lookup",
    "parse_tz",
    "xad_address",
    "xpn_human_name",
    "xtn_contact_point",
]
