"""The ``pyheart`` command line."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pyheart.broker.engine.commands import add_engine_commands
from pyheart.broker.errors import PyHeartError
from pyheart.broker.registry import PluginRegistry

#: The demo's broker port (docker-compose and examples use it); ``pyheart kafka start`` takes it if free.
_DEMO_KAFKA_PORT = 9092


def _version() -> str:
    try:
        return version("pyheart")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0+unknown"


def _cmd_plugins_list(_args: argparse.Namespace) -> int:
    registry = PluginRegistry()
    registry.discover_entry_points()
    names = registry.available_plugins()
    rows: list[tuple[str, str, str, str]] = []
    for name in names:
        try:
            meta = registry.resolve_class(name)().get_metadata()
            rows.append((name, meta.plugin_type.value, meta.version, meta.description))
        except Exception as exc:
            rows.append((name, "?", "?", f"(metadata unavailable: {type(exc).__name__})"))
    if not rows:
        print("no plugins installed")
        return 0
    width = max(len(r[0]) for r in rows)
    print(f"{'NAME':<{width}}  {'TYPE':<13}  {'VERSION':<8}  DESCRIPTION")
    for name, kind, ver, desc in rows:
        print(f"{name:<{width}}  {kind:<13}  {ver:<8}  {desc}")
    return 0


def _kafka_state_path() -> Path:
    from pyheart.broker.devkafka import kafka_home

    return kafka_home() / "broker.json"


def _kafka_libs() -> Path:
    from pyheart.broker.devkafka import KAFKA_VERSION, ensure_jars, libs_dir
    from pyheart.broker.devkafka.runtime import jars_present

    if not jars_present(libs_dir()):
        print(f"fetching the Kafka {KAFKA_VERSION} jars with Maven into {libs_dir()} ...", file=sys.stderr)
    return ensure_jars()


def _print_help(parser: argparse.ArgumentParser, _args: argparse.Namespace) -> int:
    parser.print_help()
    return 2


def _add_kafka_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from pyheart.broker.devjvm import ServiceCommands, add_service_commands
    from pyheart.broker.devkafka import BrokerState, LocalKafka

    kafka = sub.add_parser("kafka", help="a local Apache Kafka broker for development and CI (no Docker)")
    kafka.set_defaults(func=functools.partial(_print_help, kafka))
    commands = ServiceCommands(
        command="pyheart kafka",
        dest="kafka_command",
        demo_port=_DEMO_KAFKA_PORT,
        state_path=_kafka_state_path,
        state_type=BrokerState,
        fetch=_kafka_libs,
        launch=lambda port, timeout: LocalKafka(
            port=port, libs=_kafka_libs(), detach=True, ready_timeout=timeout
        ),
        started_note="Kafka broker pid {pid}, log {log}, state {state}",
        fetch_help="download the broker jars with Maven (CI warm-up)",
        start_help="start a broker in the background; prints its bootstrap address last",
        port_help=f"client port (default: {_DEMO_KAFKA_PORT} if free, else any free port)",
        status_help="is the background broker running (exit 1 if not)",
        stop_help="stop the background broker and remove its data",
        nothing_recorded="no broker recorded",
    )
    add_service_commands(kafka, commands)


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise PyHeartError(f"cannot read {path}: {exc.strerror}") from None


def _cmd_convert(args: argparse.Namespace) -> int:
    import orjson

    from pyheart.broker import offline
    from pyheart.broker.contracts import Format

    data = _read_input(args.file)
    try:
        outputs = offline.convert(data, args.to, args.plugin)
    except PyHeartError:
        raise
    except Exception as exc:  # a plugin bug: report its class, never its text (it may quote values)
        raise PyHeartError(f"conversion failed inside the transformer ({type(exc).__name__})") from None
    for out in outputs:
        if out.format in (Format.FHIR_JSON, Format.JSON):
            sys.stdout.write(
                orjson.dumps(orjson.loads(out.payload), option=orjson.OPT_INDENT_2).decode() + "\n"
            )
        else:
            text = out.payload.decode("utf-8", errors="replace")
            sys.stdout.write(text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n") + "\n")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    import orjson

    from pyheart.broker import offline

    report = offline.validate(_read_input(args.file), args.validator or ())
    sys.stdout.write(orjson.dumps(report.to_operation_outcome(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0 if report.ok else 1


def _add_offline_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    convert = sub.add_parser("convert", help="convert one HL7v2 / FHIR / DICOM input offline and print it")
    convert.add_argument("--to", required=True, choices=["fhir", "hl7v2"], help="target format")
    convert.add_argument("--plugin", help="transformer entry-point name (default: the one that fits)")
    convert.add_argument("file", nargs="?", default="-", help="input file, or - for stdin (default)")
    convert.set_defaults(func=_cmd_convert)
    validate = sub.add_parser("validate", help="validate one input offline; print an OperationOutcome")
    validate.add_argument(
        "--validator",
        action="append",
        help="validator entry-point name (repeatable; default: the default gates)",
    )
    validate.add_argument("file", nargs="?", default="-", help="input file, or - for stdin (default)")
    validate.set_defaults(func=_cmd_validate)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="pyheart", description="Kafka-native HL7v2 / FHIR R4 / DICOM engine"
    )
    parser.add_argument("--version", action="version", version=f"pyheart {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    plugins = sub.add_parser("plugins", help="installed plugins")
    plugins_sub = plugins.add_subparsers(dest="plugins_command", metavar="SUBCOMMAND")
    plugins_list = plugins_sub.add_parser(
        "list", help="list the plugins installed in the pyheart.plugins group"
    )
    plugins_list.set_defaults(func=_cmd_plugins_list)
    _add_kafka_parser(sub)
    from pyheart.broker.devfhir import add_subcommands as add_fhir_server_commands

    fhir_server = sub.add_parser(
        "fhir-server", help="a local HAPI FHIR R4 server for development and CI (no Docker)"
    )
    fhir_server.set_defaults(func=functools.partial(_print_help, fhir_server))
    add_fhir_server_commands(fhir_server)
    _add_offline_parsers(sub)
    add_engine_commands(sub)
    from pyheart.broker.native import add_subcommands as add_native_commands

    add_native_commands(sub)
    _add_claim_check_parser(sub)
    return parser


def _cmd_claim_check_prune(args: argparse.Namespace) -> int:
    from pyheart.broker.claimcheck import ClaimCheckStore

    result = ClaimCheckStore(args.dir).prune(args.older_than, dry_run=args.dry_run)
    verb = "would prune" if args.dry_run else "pruned"
    print(f"{verb} {result.files} claim check files ({result.bytes} bytes)")
    return 0


def _add_claim_check_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from pyheart.broker.claimcheck import parse_age

    claim = sub.add_parser("claim-check", help="the claim check store of large payloads")
    claim.set_defaults(func=functools.partial(_print_help, claim))
    commands = claim.add_subparsers(dest="claim_command", metavar="SUBCOMMAND")
    prune = commands.add_parser(
        "prune", help="delete claim files older than an age (choose one above the topics' retention)"
    )
    prune.add_argument("dir", help="the claim_check.dir of the listeners, engine and senders")
    prune.add_argument(
        "--older-than", type=parse_age, required=True, metavar="AGE", help="e.g. 30d, 12h, 90m, 3600s"
    )
    prune.add_argument("--dry-run", action="store_true", help="report what would be deleted; delete nothing")
    prune.set_defaults(func=_cmd_claim_check_prune)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args))
    except PyHeartError as exc:
        print(f"pyheart: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
