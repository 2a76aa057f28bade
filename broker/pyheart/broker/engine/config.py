"""The engine's configuration file: pydantic models of ``pipelines:`` and ``kafka:``.

An operator reads and writes this file, so it is small and explicit::

    kafka:
      bootstrap_servers: ${KAFKA_BOOTSTRAP_SERVERS:-localhost:9092}
    metrics: {port: 9464}
    pipelines:
      - name: adt-to-fhir                  # also the consumer group id unless group_id is set
        input:
          topics: [hl7.adt]
          format: application/hl7-v2       # used when a record has no content-type header
        validators:                        # the ordered gate: the first rejection dead-letters
          - {id: structure, plugin: hl7v2-structure}
        transformers:                      # a chain; consumes/produces are checked at load time
          - {id: to-fhir, plugin: hl7v2-to-fhir, config: {}}
        routes:                            # the first matching route wins
          - {when: {message_type: ADT, trigger: [A01, A04]}, topic: fhir.adt.admit}
          - {topic: fhir.adt.other}
        dead_letter: {topic: hl7.adt.dlq}
        key: {strategy: patient}           # patient | input | header | none
        exactly_once: false
        hooks:
          message_dead_lettered: {plugins: [pager], topic: audit.events}
        plugins:                           # notifier / workflow plugins the hooks call
          - {id: pager, plugin: my-company-pager, config: {url: "${PAGER_URL}"}}

Every ``${VAR}`` / ``${VAR:-default}`` is expanded first (all missing variables reported at once),
unknown keys are rejected everywhere, and every error names its path (``pipelines[0].routes[1].topic``)
and the rule, never the value.

Secured clusters: ``kafka.security_protocol`` with a ``tls`` and/or ``sasl`` block; every engine client
(pipelines, replay) and every adapter that leaves these out of its own config uses them::

    kafka:
      bootstrap_servers: kafka-1.hospital.example:9093
      security_protocol: SASL_SSL          # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
      tls:                                 # SSL / SASL_SSL: ca_file, or system_ca: true
        ca_file: /etc/pyheart/kafka-ca.pem
        cert_file: /etc/pyheart/client.pem # mutual TLS (optional): cert_file + key_file
        key_file: /etc/pyheart/client.key
        key_password: ${KAFKA_KEY_PASSWORD}
        check_hostname: true
      sasl:                                # SASL_PLAINTEXT / SASL_SSL
        mechanism: SCRAM-SHA-512           # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
        username: pyheart
        password: ${KAFKA_PASSWORD}

``sasl.password`` and ``tls.key_password`` are secrets: only ``${VAR}`` references are accepted in
a file, and they stay masked (``Secret('**********')``) in reprs and dumps. Rules: SSL / SASL_SSL need
``tls.ca_file`` or ``tls.system_ca: true``; SASL_* need ``sasl``; a ``tls`` block without SSL (or
``sasl`` without SASL) is rejected rather than silently ignored; ``cert_file`` and ``key_file`` go
together. Adapters take the same blocks as ``security_protocol`` / ``kafka_tls`` / ``kafka_sasl``
(see :mod:`pyheart.broker.kafka_security`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from pyheart.broker.claimcheck import DEFAULT_THRESHOLD_BYTES, ClaimCheckStore
from pyheart.broker.config import Secret, expand_env, load_document
from pyheart.broker.contracts import Header
from pyheart.broker.errors import ConfigError
from pyheart.broker.kafka_security import (
    KafkaSecurity,
    SaslMechanism,
    SaslSettings,
    SecurityProtocol,
    TlsSettings,
)

#: Topic events the engine raises; hooks map them to plugins and topics.
EVENTS: tuple[str, ...] = (
    "message_received",
    "message_validated",
    "message_rejected",
    "message_transformed",
    "message_produced",
    "message_dead_lettered",
    "partitions_assigned",
    "partitions_revoked",
    "pipeline_started",
    "pipeline_stopped",
)

_TOPIC = r"^[A-Za-z0-9._-]{1,249}$"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"

TopicName = Annotated[str, Field(pattern=_TOPIC)]
OneOrMany = str | list[str]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _to_secret(value: Any) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a string")  # never the value itself
    return Secret(value)


#: A :class:`Secret` field: masked in repr and in JSON dumps.
SecretField = Annotated[
    Secret,
    PlainValidator(_to_secret),
    PlainSerializer(repr, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "writeOnly": True}),
]

#: Paths of the secret fields of the file (their values must come from ``${VAR}``).
SECRET_PATHS: tuple[str, ...] = ("kafka.sasl.password", "kafka.tls.key_password")


class KafkaTlsSettings(_Strict):
    """TLS to the brokers: whom to trust (``ca_file`` or ``system_ca``) and, for mutual TLS, who we are."""

    ca_file: str | None = None
    system_ca: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    key_password: SecretField | None = None
    check_hostname: bool = True


class KafkaSaslSettings(_Strict):
    """SASL credentials (PLAIN or SCRAM)."""

    mechanism: SaslMechanism = "PLAIN"
    username: Annotated[str, Field(min_length=1)]
    password: SecretField


class KafkaSettings(_Strict):
    """Connection and client settings shared by every pipeline."""

    bootstrap_servers: str = "localhost:9092"
    client_id: str = "pyheart"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    tls: KafkaTlsSettings | None = None
    sasl: KafkaSaslSettings | None = None
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    max_poll_interval_ms: int = Field(default=300_000, ge=1_000)
    max_batch: int = Field(default=500, ge=1, le=100_000)
    fetch_timeout_ms: int = Field(default=500, ge=1)
    linger_ms: int = Field(default=5, ge=0)
    max_batch_size: int = Field(default=1_048_576, ge=1_024)
    request_timeout_ms: int = Field(default=30_000, ge=1_000)
    transaction_timeout_ms: int = Field(default=60_000, ge=1_000)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    #: How often clients refresh topic metadata. aiokafka's 5-minute default leaves a consumer that
    #: subscribed before its topic existed (the normal case on a fresh cluster) idle for 5 minutes.
    metadata_max_age_ms: int = Field(default=10_000, ge=1_000)

    @model_validator(mode="after")
    def _security_rules(self) -> KafkaSettings:
        issues = self.security().issues()
        if issues:
            raise ValueError("; ".join(str(issue) for issue in issues))
        return self

    def security(self) -> KafkaSecurity:
        """The security settings, for :func:`pyheart.broker.kafka_security.client_kwargs`."""
        tls = self.tls
        sasl = self.sasl
        return KafkaSecurity(
            protocol=self.security_protocol,
            tls=None
            if tls is None
            else TlsSettings(
                ca_file=tls.ca_file,
                cert_file=tls.cert_file,
                key_file=tls.key_file,
                key_password=tls.key_password,
                check_hostname=tls.check_hostname,
                system_ca=tls.system_ca,
            ),
            sasl=None
            if sasl is None
            else SaslSettings(username=sasl.username, password=sasl.password, mechanism=sasl.mechanism),
        )


class MetricsSettings(_Strict):
    """The HTTP endpoint for Prometheus metrics, ``/healthz`` and ``/readyz`` (port 0: any free port)."""

    enabled: bool = True

    host: str = "0.0.0.0"  # noqa: S104 - a metrics endpoint is meant to be scraped from outside
    port: int = Field(default=9464, ge=0, le=65_535)


class PluginRef(_Strict):
    """One plugin in a pipeline: its id there, its class, its config."""

    id: Annotated[str, Field(pattern=_NAME)]
    plugin: Annotated[str, Field(min_length=1)]
    config: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class InputSettings(_Strict):
    """Where a pipeline reads from."""

    topics: list[TopicName] = Field(min_length=1)
    format: str | None = None
    source: str | None = None

    @field_validator("topics", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class RouteMatch(_Strict):
    """Conditions of a route; all given conditions must hold, a list means any of its values."""

    message_type: OneOrMany | None = None
    trigger: OneOrMany | None = None
    format: OneOrMany | None = None
    headers: dict[str, OneOrMany] = Field(default_factory=dict)

    def conditions(self) -> list[tuple[str, frozenset[str]]]:
        """``(header name, accepted values)`` pairs."""
        out: list[tuple[str, frozenset[str]]] = []
        for name, value in (
            (Header.MESSAGE_TYPE, self.message_type),
            (Header.TRIGGER, self.trigger),
            (Header.CONTENT_TYPE, self.format),
        ):
            if value is not None:
                out.append((name, frozenset([value] if isinstance(value, str) else value)))
        for name, value in self.headers.items():
            out.append((name, frozenset([value] if isinstance(value, str) else value)))
        return out


class Route(_Strict):
    """Send outputs that match ``when`` (or every output, without ``when``) to ``topic``."""

    topic: TopicName
    when: RouteMatch | None = None


class DeadLetterSettings(_Strict):
    """The pipeline's dead-letter topic."""

    topic: TopicName


class RetrySettings(_Strict):
    """Exponential backoff with jitter for retriable transport errors, bounded, then dead-letter."""

    max_attempts: int = Field(default=5, ge=1, le=100)
    initial_backoff_ms: int = Field(default=100, ge=0)
    max_backoff_ms: int = Field(default=10_000, ge=0)
    multiplier: float = Field(default=2.0, ge=1.0)
    jitter: float = Field(default=0.2, ge=0.0, le=1.0)

    def delay_s(self, attempt: int, rand: float) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based); ``rand`` in [0, 1)."""
        base = min(self.max_backoff_ms, self.initial_backoff_ms * self.multiplier ** (attempt - 1))
        return base * (1.0 - self.jitter + 2.0 * self.jitter * rand) / 1000.0


class KeySettings(_Strict):
    """How the partition key of outputs is chosen.

    ``patient`` (default): a hash of the patient identifier (HL7 PID-3 id + assigning authority,
    FHIR Patient identifier or subject reference), so one patient's messages stay in order
    without putting an identifier on the wire; falls back to the input record's key.
    ``input``: the input record's key. ``header``: the value of ``header``. ``none``: no key.
    """

    strategy: Literal["patient", "input", "header", "none"] = "patient"
    header: str | None = None

    @model_validator(mode="after")
    def _header_needed(self) -> KeySettings:
        if self.strategy == "header" and not self.header:
            raise ValueError("strategy 'header' needs 'header' (the header name)")
        return self


class HookTarget(_Strict):
    """What happens on one event: plugins to call and/or a topic to publish an event record to."""

    plugins: list[str] = Field(default_factory=list)
    topic: TopicName | None = None


class PipelineSettings(_Strict):
    """One pipeline: one consumer group, one PluginRegistry."""

    name: Annotated[str, Field(pattern=_NAME)]
    group_id: str | None = None
    input: InputSettings
    validators: list[PluginRef] = Field(default_factory=list)
    transformers: list[PluginRef] = Field(default_factory=list)
    routes: list[Route] = Field(min_length=1)
    dead_letter: DeadLetterSettings
    exactly_once: bool = False
    key: KeySettings = Field(default_factory=KeySettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    hooks: dict[str, HookTarget] = Field(default_factory=dict)
    plugins: list[PluginRef] = Field(default_factory=list)

    @property
    def group(self) -> str:
        """The consumer group id."""
        return self.group_id or self.name

    @field_validator("hooks")
    @classmethod
    def _known_events(cls, value: dict[str, HookTarget]) -> dict[str, HookTarget]:
        unknown = sorted(set(value) - set(EVENTS))
        if unknown:
            raise ValueError(f"unknown events {', '.join(unknown)} (known: {', '.join(EVENTS)})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PipelineSettings:
        ids = [p.id for p in (*self.validators, *self.transformers, *self.plugins)]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"plugin ids used twice: {', '.join(dupes)}")
        hook_plugins = {p.id for p in self.plugins}
        for event, target in self.hooks.items():
            for pid in target.plugins:
                if pid not in hook_plugins:
                    raise ValueError(f"hooks.{event}: plugin '{pid}' is not listed under 'plugins'")
        if self.dead_letter.topic in self.input.topics:
            raise ValueError("dead_letter.topic must not be one of the input topics")
        return self


class ClaimCheckSettings(_Strict):
    """Where payloads too large for a Kafka record are kept (see :mod:`pyheart.broker.claimcheck`).

    Records carrying a claim are resolved from ``dir`` before the validators see them; outputs above
    ``threshold_bytes`` are written there and produced as claims.
    """

    dir: Annotated[str, Field(min_length=1)]
    threshold_bytes: int = Field(default=DEFAULT_THRESHOLD_BYTES, ge=1)

    def store(self) -> ClaimCheckStore:
        """The store these settings describe."""
        return ClaimCheckStore(self.dir, self.threshold_bytes)


class EngineSettings(_Strict):
    """The whole file."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    #: The claim-check store every pipeline of the file uses (None: records carrying a claim fail).
    claim_check: ClaimCheckSettings | None = None
    #: Adapter plugins ``pyheart run`` hosts (see :mod:`pyheart.broker.engine.adapters`).
    adapters: list[PluginRef] = Field(default_factory=list)
    pipelines: list[PipelineSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> EngineSettings:
        if not self.pipelines and not self.adapters:
            raise ValueError("at least one pipeline or adapter is required")
        ids = [a.id for a in self.adapters]
        dupes_ids = sorted({i for i in ids if ids.count(i) > 1})
        if dupes_ids:
            raise ValueError(f"adapter ids used twice: {', '.join(dupes_ids)}")
        names = [p.name for p in self.pipelines]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"pipeline names used twice: {', '.join(dupes)}")
        return self

    def claim_check_store(self) -> ClaimCheckStore | None:
        """The file's claim-check store, or None when ``claim_check`` is not configured."""
        return self.claim_check.store() if self.claim_check is not None else None

    def pipeline(self, name: str) -> PipelineSettings:
        """The pipeline called ``name``."""
        for p in self.pipelines:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.pipelines)
        raise ConfigError(f"no pipeline named '{name}' (known: {known})")


def _path(loc: tuple[int | str, ...], data: Any) -> str:
    """``('pipelines', 0, 'routes', 1, 'topic')`` as ``pipelines[0](name).routes[1].topic``."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            if isinstance(node, list) and 0 <= part < len(node):
                node = node[part]
                if isinstance(node, Mapping) and isinstance(
                    node.get("name" if "input" in node else "id"), str
                ):
                    out += f"({node.get('name' if 'input' in node else 'id')})"
            else:
                node = None
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, Mapping) else None
    return out or "<root>"


def _messages(exc: ValidationError, data: Any) -> list[str]:
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-after")))
        kind = err["type"]
        if kind == "extra_forbidden":
            text = "unknown key"
        elif kind == "missing":
            text = "is required"
        else:
            text = err["msg"]
            text = text.removeprefix("Value error, ")
        lines.append(f"{_path(loc, data)}: {text} [{kind}]")
    return lines


def _literal_secrets(data: Mapping[str, Any], env_paths: set[str]) -> list[str]:
    lines = []
    for path in SECRET_PATHS:
        node: Any = data
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None and not isinstance(node, Secret) and path not in env_paths:
            lines.append(f"{path}: must be an environment reference such as ${{VAR}}, not a literal [secret]")
    return lines


def parse_settings(data: Mapping[str, Any], env_paths: set[str] | None = None) -> EngineSettings:
    """Validate an already expanded document; :class:`ConfigError` lists every problem with its path.

    ``env_paths`` (from :func:`~pyheart.broker.config.expand_env`) are the paths whose values came
    from environment references; secrets must be among them. ``None``: built in code, not checked.
    """
    lines = [] if env_paths is None else _literal_secrets(data, env_paths)
    try:
        settings = EngineSettings.model_validate(data)
    except ValidationError as exc:
        lines.extend(_messages(exc, data))
    if lines:
        raise ConfigError("invalid engine configuration:\n  " + "\n  ".join(lines)) from None
    return settings


def load_settings(
    source: str | os.PathLike[str] | Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> tuple[EngineSettings, set[str]]:
    """Read, expand and validate a configuration; returns the settings and the env-derived paths."""
    document = load_document(source)
    expanded = expand_env(document, environ)
    return parse_settings(expanded.data, expanded.env_paths), expanded.env_paths


__all__ = [
    "EVENTS",
    "ClaimCheckSettings",
    "DeadLetterSettings",
    "EngineSettings",
    "HookTarget",
    "InputSettings",
    "KafkaSaslSettings",
    "KafkaSettings",
    "KafkaTlsSettings",
    "KeySettings",
    "MetricsSettings",
    "PipelineSettings",
    "PluginRef",
    "RetrySettings",
    "Route",
    "RouteMatch",
    "load_settings",
    "parse_settings",
]
