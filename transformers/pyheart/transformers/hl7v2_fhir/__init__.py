"""HL7 v2 -> FHIR R4 conversion following the HL7 v2-to-FHIR IG mapping tables.

``convert(data)`` turns one ER7 message into a FHIR R4 transaction Bundle (a dict);
:class:`Hl7v2ToFhir` is the transformer plugin (entry point ``hl7v2-to-fhir``).

Design
    One table-driven mechanism: segment field maps declared as data (:mod:`.fieldmaps`, rows of
    segment field -> FHIR element through an IG datatype map and concept map), IG datatype maps
    (:mod:`.datatypes`), vocabularies generated from the IG concept-map CSVs (:mod:`._vocab`), and
    one handler per segment id that links the resource into the message structure
    (:mod:`.converter`). Message families only select the few variants the IG message maps make.

Choices (documented here because the IG leaves them open)
    - Ids: resources with a business identifier get UUIDv5 ids from ``type|system|value`` and a
      conditional update ``PUT Type?identifier=system|value`` (no ``id`` in the body, the server
      matches); others get ids from sender + control id + segment position and ``PUT Type/id``.
      Identifiers without an assigning authority take the sender's (MSH-4) namespace as system.
      ``bundle_type: batch`` uses ``PUT Type/id`` and ``Type/id`` references throughout.
    - PractitionerRoles (ROL, PRT, OBX-16/25, ORC-21): ids from the practitioner's id, the
      role code and the organisation's id (or ROL-1 when valued), the same in transaction and
      batch bundles. A TQ1 between ORC and its OBR/RXE waits for that resource; after SCH it
      times the Appointment. OBR's specimen fields make a Specimen only when the order group
      has no SPM (SPM is the specimen's own segment).
    - Times: precision and zone are kept. A time without a zone takes MSH-7's zone (HL7 v2 makes
      it the message default), else the configured ``default_timezone``, else the value keeps day
      precision (no invented zone). Provenance needs an instant: without one it is not emitted.
    - Merges (A40 etc.): the surviving Patient ``replaces`` the prior one (MRG-1), which is sent
      inactive with ``replaced-by``. Because a transaction PUT replaces the whole prior Patient,
      a server that must keep its other data should apply that entry as a PATCH.
    - Results: Observations without OBX-21 are identified by filler order + OBX-3 + OBX-4 (+ set
      id), so a corrected result updates the same Observation; OBX-11/OBR-25 give the status.
    - Speed: what a feed repeats is built once and kept across messages, per conversion settings
      and bounded in size: coded values, the resources built for practitioners, organisations
      and locations (replayed into each bundle as a fresh build would add them), the parts of a
      CX after its value, and the MessageHeader of a sender's header. Kept as JSON, so no two
      bundles share an object; patient data (names, addresses, telecoms) is not kept.

Commands
    ``python -m pyheart.transformers.hl7v2_fhir.conformance [--json] [--missed] [--detail TYPE]``
        agreement with Microsoft FHIR-Converter's expected bundles.
    ``python -m pyheart.transformers.hl7v2_fhir.coverage [--json] [--missing]``
        which IG message/segment/datatype/concept maps are implemented.
    ``python -m pyheart.transformers.hl7v2_fhir.gen_vocab`` (then ``ruff format`` the output)
        regenerates :mod:`._vocab` from the IG concept-map CSVs.
"""

from pyheart.broker import native as _native

# The hot path may run from the optional native build (see pyheart.broker.native).
__path__ = _native.package_path(__name__, __path__)

from pyheart.transformers.hl7v2_fhir.api import convert, convert_message
from pyheart.transformers.hl7v2_fhir.context import Options
from pyheart.transformers.hl7v2_fhir.plugin import Hl7v2ToFhir

__all__ = ["Hl7v2ToFhir", "Options", "convert", "convert_message"]
