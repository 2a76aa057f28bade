"""Built-in validator plugins: gates that check one message and return a report, never change it.

The HL7 v2 and FHIR gates (each registered under the ``pyheart.plugins`` entry-point name shown):

* ``hl7v2-structure`` (:class:`~pyheart.validators.hl7v2_structure.Hl7v2StructureValidator`):
  fast, tolerant ER7 structure checks (MSH, version, required segments per message structure).
* ``hl7v2-strict`` (:class:`~pyheart.validators.hl7v2_strict.Hl7v2StrictValidator`): opt-in
  validation against the standard's message structures with hl7apy (slow: milliseconds).
* ``fhir-structure`` (:class:`~pyheart.validators.fhir_structure.FhirStructureValidator`): FHIR R4
  JSON against fhir.resources' R4B models.
* ``business-rules`` (:class:`~pyheart.validators.business_rules.BusinessRulesValidator`): required
  fields, allowed values and patterns from configuration, for HL7 v2 and FHIR JSON.

Nothing is imported here: importing a plugin module does no work until a message arrives.
"""
