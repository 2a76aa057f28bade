"""The engine's subcommands of ``pyheart``: ``run``, ``config check`` and ``replay``.

``pyheart.broker.cli`` adds them with :func:`add_engine_commands`; each returns an exit code and
raises :class:`~pyheart.broker.errors.PyHeartError` for errors a person can act on.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from aiokafka.errors import KafkaError

from pyheart.broker.engine.adapters import AdapterHost
from pyheart.broker.engine.config import EngineSettings, KafkaSettings, load_settings
from pyheart.broker.engine.kafka_io import KafkaClients
from pyheart.broker.engine.pipeline import Pipeline
from pyheart.broker.engine.replay import (
    Selection,
    parse_header_filters,
    parse_time,
    pipeline_for,
    replay,
)
from pyheart.broker.engine.runtime import Engine
from pyheart.broker.errors import ConfigError, TransportError
from pyheart.broker.logs import configure_logging


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def check(settings: EngineSettings, env_paths: set[str]) -> list[Pipeline]:
    """Load every pipeline (plugin classes, plugin configs, transformer chains) without connecting.

    Raises one :class:`ConfigError` listing the problems of every pipeline.
    """
    pipelines: list[Pipeline] = []
    problems: list[str] = []
    try:
        AdapterHost(settings.adapters, settings.kafka, env_paths)
    except ConfigError as exc:
        problems.append(str(exc).removeprefix("invalid adapter configuration:\n  "))
    for index, p in enumerate(settings.pipelines):
        try:
            pipelines.append(Pipeline(p, env_paths, index=index, claim_check=settings.claim_check_store()))
        except ConfigError as exc:
            problems.append(str(exc).removeprefix("invalid pipeline configuration:\n  "))
    if problems:
        raise ConfigError("invalid pipeline configuration:\n  " + "\n  ".join(problems))
    return pipelines


def _cmd_config_check(args: argparse.Namespace) -> int:
    settings, env_paths = load_settings(args.config)
    pipelines = check(settings, env_paths)
    for p in pipelines:
        steps = len(p.validators) + len(p.transformers)
        mode = "exactly-once" if p.settings.exactly_once else "at-least-once"
        _say(
            f"pipeline {p.name}: group {p.settings.group}, {', '.join(p.settings.input.topics)} -> "
            f"{len(p.settings.routes)} route(s), {steps} step(s), {mode}, "
            f"dead letters to {p.settings.dead_letter.topic}"
        )
    for ref in settings.adapters:
        _say(f"adapter {ref.id}: {ref.plugin}{'' if ref.enabled else ' (disabled)'}")
    _say(f"{args.config}: ok ({len(pipelines)} pipeline(s), {len(settings.adapters)} adapter(s))")
    return 0


async def _run(settings: EngineSettings, env_paths: set[str], args: argparse.Namespace) -> None:
    engine = Engine(
        settings,
        KafkaClients(settings.kafka),
        env_paths=env_paths,
        instance_id=args.instance_id,
        only=args.pipeline or None,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, engine.request_stop)
    try:
        await engine.run()
    except KafkaError as exc:
        raise TransportError(
            f"Kafka at {settings.kafka.bootstrap_servers}: {type(exc).__name__}", retriable=False
        ) from None


def _cmd_run(args: argparse.Namespace) -> int:
    settings, env_paths = load_settings(args.config)
    if args.metrics_port is not None:
        metrics = settings.metrics.model_copy(update={"port": args.metrics_port})
        settings = settings.model_copy(update={"metrics": metrics})
    if args.pipeline:
        for name in args.pipeline:
            settings.pipeline(name)
    configure_logging(args.log_level.upper())
    asyncio.run(_run(settings, env_paths, args))
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    if args.config:
        settings, env_paths = load_settings(args.config)
        kafka = settings.kafka
    else:
        settings, env_paths = None, set()
        kafka = KafkaSettings(bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"))
    if args.bootstrap_servers:
        kafka = kafka.model_copy(update={"bootstrap_servers": args.bootstrap_servers})
    if (args.to_topic is None) == (args.pipeline is None):
        raise ConfigError("replay: give exactly one target, --to-topic TOPIC or --pipeline NAME")
    pipeline = None
    if args.pipeline is not None:
        if settings is None:
            raise ConfigError("replay: --pipeline needs the configuration (-c CONFIG)")
        pipeline = pipeline_for(settings, args.pipeline, env_paths)
    if args.from_offset is None and args.from_time is None and not args.all:
        raise ConfigError("replay: choose a range (--from-offset / --from-time) or --all")
    selection = Selection(
        topic=args.topic,
        partitions=tuple(args.partition or ()),
        from_offset=args.from_offset,
        to_offset=args.to_offset,
        from_time_ms=parse_time(args.from_time) if args.from_time else None,
        to_time_ms=parse_time(args.to_time) if args.to_time else None,
        headers=parse_header_filters(args.header or ()),
        limit=args.limit,
    )
    configure_logging(logging.INFO)
    report = asyncio.run(
        replay(
            selection,
            kafka=kafka,
            to_topic=args.to_topic,
            pipeline=pipeline,
            dry_run=args.dry_run,
            echo=_say if args.dry_run else None,
        )
    )
    verb = "would replay" if args.dry_run else "replayed"
    summary = f"{verb} {report.selected} record(s) of {selection.describe()}"
    if not args.dry_run:
        summary += f": {report.sent} sent, {report.dead_lettered} dead-lettered"
    if args.dry_run:
        sys.stderr.write(summary + "\n")
    else:
        _say(summary)
    return 0


def add_engine_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``run``, ``config check`` and ``replay`` to the ``pyheart`` parser."""
    run = sub.add_parser("run", help="run the pipelines of a configuration until SIGTERM/SIGINT")
    run.add_argument("-c", "--config", required=True, help="the engine configuration (YAML or JSON)")
    run.add_argument("--pipeline", action="append", help="run only this pipeline (repeatable)")
    run.add_argument(
        "--instance-id",
        default=os.environ.get("PYHEART_INSTANCE_ID"),
        help="id of this worker in transactional ids (default: $PYHEART_INSTANCE_ID, else <host>-<lowest free slot>)",
    )
    run.add_argument("--metrics-port", type=int, help="override metrics.port (0 = any free port)")
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.set_defaults(func=_cmd_run)

    config = sub.add_parser("config", help="engine configuration tools")
    config_sub = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    check_ = config_sub.add_parser(
        "check", help="validate a configuration and every plugin's config without connecting"
    )
    check_.add_argument("-c", "--config", required=True, help="the engine configuration (YAML or JSON)")
    check_.set_defaults(func=_cmd_config_check)

    rp = sub.add_parser(
        "replay",
        help="re-send records of a topic (offset or time range, header filters) to a topic or a pipeline",
    )
    rp.add_argument("-c", "--config", help="the engine configuration (for --pipeline and kafka settings)")
    rp.add_argument("--bootstrap-servers", help="override the configuration's / $KAFKA_BOOTSTRAP_SERVERS")
    rp.add_argument("--topic", required=True, help="the topic to read (e.g. a dead-letter topic)")
    rp.add_argument("--partition", type=int, action="append", help="only this partition (repeatable)")
    rp.add_argument("--from-offset", type=int, help="first offset (inclusive)")
    rp.add_argument("--to-offset", type=int, help="last offset (inclusive)")
    rp.add_argument("--from-time", help="first record time, ISO 8601 with zone or epoch ms (inclusive)")
    rp.add_argument("--to-time", help="last record time, ISO 8601 with zone or epoch ms (inclusive)")
    rp.add_argument("--all", action="store_true", help="the whole topic")
    rp.add_argument(
        "--header", action="append", help="only records whose header NAME has one of VALUES: NAME=V1[,V2]"
    )
    rp.add_argument("--limit", type=int, help="at most this many records")
    target = rp.add_mutually_exclusive_group()
    target.add_argument("--to-topic", help="send the records to this topic")
    target.add_argument("--pipeline", help="send the records through this pipeline of the configuration")
    rp.add_argument("--dry-run", action="store_true", help="list what would be replayed; send nothing")
    rp.set_defaults(func=_cmd_replay)


__all__ = ["add_engine_commands", "check"]
