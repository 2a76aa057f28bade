"""The ``pyheart`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from pyheart.broker.errors import PyHeartError
from pyheart.broker.registry import PluginRegistry


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
        cls = registry.resolve_class(name)
        try:
            meta = cls().get_metadata()
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
    return parser


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
