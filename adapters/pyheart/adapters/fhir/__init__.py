"""FHIR R4 REST out: the ``fhir-rest-sender`` adapter and the HTTP authenticator plugins.

- :class:`FhirRestSender` (entry point ``fhir-rest-sender``) - consumes a topic and delivers
  transaction Bundles and resources (conditional create / update) with httpx; retries 429/5xx
  honouring ``Retry-After``; dead-letters 4xx OperationOutcomes with their issue codes.
- Authenticators (entry points ``auth-bearer``, ``auth-basic``, ``auth-oauth2-client-credentials``,
  ``auth-mtls``) - credentials from the environment only.
- :class:`RetryPolicy` - bounded exponential backoff with jitter.
"""

from pyheart.adapters.fhir.auth import (
    BasicAuthenticator,
    BearerAuthenticator,
    HttpAuthenticator,
    MutualTlsAuthenticator,
    OAuth2ClientCredentialsAuthenticator,
)
from pyheart.adapters.fhir.client import FhirClient, FhirRequest, Outcome, plan_request
from pyheart.adapters.fhir.retry import RetryPolicy, parse_retry_after
from pyheart.adapters.fhir.sender import DeliveryResult, FhirRestSender

__all__ = [
    "BasicAuthenticator",
    "BearerAuthenticator",
    "DeliveryResult",
    "FhirClient",
    "FhirRequest",
    "FhirRestSender",
    "HttpAuthenticator",
    "MutualTlsAuthenticator",
    "OAuth2ClientCredentialsAuthenticator",
    "Outcome",
    "RetryPolicy",
    "parse_retry_after",
    "plan_request",
]
