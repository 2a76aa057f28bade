"""An optional native build of the HL7 v2 -> FHIR hot path, compiled with mypyc.

    pyheart native build      compile (needs a C compiler and the ``native`` extra: mypy, setuptools)
    pyheart native status     say whether this process converts with the native build

The modules in :data:`MODULES` (the ER7 parser and the HL7 v2 -> FHIR converter) are ordinary
type-checked Python; mypyc turns the same source into C extensions, about 1.8x faster per
message (see ``bench/bench_hl7v2_fhir.py``). Nothing else changes: the source stays the one
truth, tests run against whichever is loaded, and a process without a build runs the Python.

A build lives in ``${PYHEART_CACHE_DIR:-~/.cache/pyheart}/native/<key>/`` where ``key`` is a
digest of the interpreter's extension suffix and of every compiled module's source. A package
whose modules are compiled calls :func:`package_path` from its ``__init__`` so the build's
folder is searched before the source folder, but only when a build for exactly these sources
exists: an edited module changes the key, so a stale build is never loaded.

``PYHEART_NATIVE``: ``auto`` (default: use a matching build when there is one), ``off`` (never),
``require`` (fail at import when there is no matching build: for a benchmark or a deployment that
must not run the slower Python modules by mistake).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pyheart.broker.cachedir import cache_root

#: The modules compiled together (one mypyc group: calls between them are native calls).
MODULES: tuple[str, ...] = (
    "pyheart.broker.hl7v2.parser",
    "pyheart.transformers.hl7v2_fhir.ids",
    "pyheart.transformers.hl7v2_fhir.context",
    "pyheart.transformers.hl7v2_fhir.datatypes",
    "pyheart.transformers.hl7v2_fhir.fieldmaps",
    "pyheart.transformers.hl7v2_fhir.converter",
)
#: mypyc's shared runtime module for the group is ``<GROUP>__mypyc``.
GROUP = "pyheart_native"
_MODES = ("auto", "off", "require")


class NativeBuildError(RuntimeError):
    """The native build is required but missing, or a build failed."""


def mode(env: Mapping[str, str] | None = None) -> str:
    """``PYHEART_NATIVE`` checked: ``auto``, ``off`` or ``require``."""
    value = (os.environ if env is None else env).get("PYHEART_NATIVE", "auto").strip().lower() or "auto"
    if value in ("0", "false", "no"):
        value = "off"
    if value not in _MODES:
        raise NativeBuildError(f"PYHEART_NATIVE must be one of {', '.join(_MODES)}")
    return value


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where builds are kept: ``$PYHEART_CACHE_DIR/native`` or ``~/.cache/pyheart/native``."""
    return cache_root(env) / "native"


def _source_roots() -> list[Path]:
    """The folders holding the ``pyheart`` namespace portions (``<root>/pyheart/...``)."""
    import pyheart

    return [Path(p).parent for p in pyheart.__path__]


def source_files(roots: Sequence[Path] | None = None) -> dict[str, Path]:
    """Each compiled module's ``.py`` source, found without importing the module."""
    found: dict[str, Path] = {}
    for module in MODULES:
        rel = Path(*module.split(".")).with_suffix(".py")
        for root in roots if roots is not None else _source_roots():
            candidate = root / rel
            if candidate.is_file():
                found[module] = candidate
                break
        else:
            raise NativeBuildError(f"native: source of {module} not found")
    return found


def build_key(sources: Mapping[str, Path]) -> str:
    """Digest of the extension ABI and every compiled source: a build matches only these."""
    digest = hashlib.sha256(str(sysconfig.get_config_var("EXT_SUFFIX")).encode())
    for module in MODULES:
        digest.update(module.encode() + b"\0" + sources[module].read_bytes() + b"\0")
    return digest.hexdigest()[:24]


_current: list[Path | None] = []  # the lookup's result, once made


def current_build() -> Path | None:
    """The build for the sources on disk, or None (none built, or ``PYHEART_NATIVE=off``).

    Raises :class:`NativeBuildError` when ``PYHEART_NATIVE=require`` and there is none."""
    if _current:
        return _current[0]
    wanted = mode()
    found: Path | None = None
    if wanted != "off":
        try:
            candidate = cache_dir() / build_key(source_files())
        except (NativeBuildError, OSError):
            candidate = None
        if candidate is not None and (candidate / "BUILT").is_file():
            found = candidate
    if found is None and wanted == "require":
        raise NativeBuildError(
            "native: PYHEART_NATIVE=require but there is no build for these sources; "
            "run `pyheart native build`"
        )
    if found is not None and str(found) not in sys.path:
        sys.path.append(str(found))  # mypyc's shared runtime module is top level
    _current.append(found)
    return found


def package_path(package: str, path: list[str]) -> list[str]:
    """``path`` (a package's ``__path__``) with the native build's folder first, when one matches."""
    build = current_build()
    if build is None:
        return path
    folder = build.joinpath(*package.split("."))
    return [str(folder), *path] if folder.is_dir() else path


def loaded() -> dict[str, bool]:
    """For each compiled module already imported: True when it runs from the native build."""
    return {
        m: not str(getattr(sys.modules[m], "__file__", "")).endswith(".py")
        for m in MODULES
        if m in sys.modules
    }


def build(*, env: Mapping[str, str] | None = None, jobs: int = 2) -> Path:
    """Compile :data:`MODULES` with mypyc into the cache and return the build folder.

    An existing build for the same sources is reused. Raises :class:`NativeBuildError` when
    mypyc or the C compiler fails (their output went to stderr)."""
    sources = source_files()
    target = cache_dir(env) / build_key(sources)
    if (target / "BUILT").is_file():
        return target
    try:
        from mypyc.build import mypycify
        from setuptools import Distribution  # type: ignore[import-untyped]
    except ImportError as exc:
        raise NativeBuildError(
            f"native: {exc.name} is missing; install the extra: pip install 'pyheart[native]'"
        ) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=target.parent))
    roots = os.pathsep.join(str(r) for r in _source_roots())
    old_cwd, old_path = Path.cwd(), os.environ.get("MYPYPATH")
    try:
        os.chdir(work)  # mypyc and setuptools write relative to the working directory
        os.environ["MYPYPATH"] = roots
        extensions = mypycify(
            [
                "--explicit-package-bases",
                "--namespace-packages",
                "--ignore-missing-imports",
                "--python-version",
                f"{sys.version_info.major}.{sys.version_info.minor}",
                *(str(sources[m]) for m in MODULES),
            ],
            opt_level="3",
            group_name=GROUP,
            multi_file=True,
            target_dir=str(work / "c"),
        )
        dist = Distribution({"name": GROUP, "ext_modules": extensions})
        command = dist.get_command_obj("build_ext")
        command.build_lib = str(work / "out")
        command.build_temp = str(work / "obj")
        command.parallel = max(1, jobs)
        dist.run_command("build_ext")
    except (SystemExit, Exception) as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise NativeBuildError(f"native: build failed ({type(exc).__name__}); see the output above") from None
    finally:
        os.chdir(old_cwd)
        if old_path is None:
            os.environ.pop("MYPYPATH", None)
        else:
            os.environ["MYPYPATH"] = old_path
    out = work / "out"
    (out / "BUILT").write_text("\n".join(MODULES) + "\n", encoding="utf-8")
    with contextlib.suppress(OSError):  # another build finished first: keep that one
        out.rename(target)
    shutil.rmtree(work, ignore_errors=True)
    if not (target / "BUILT").is_file():
        raise NativeBuildError("native: the build folder could not be put in place")
    return target


# ------------------------------------------------------------------------------------------- CLI
def _cmd_build(args: argparse.Namespace) -> int:
    try:
        folder = build(jobs=args.jobs)
    except NativeBuildError as exc:
        print(f"pyheart: error: {exc}", file=sys.stderr)
        return 1
    print(f"native build ready: {folder}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    try:
        folder = current_build()
    except NativeBuildError as exc:
        print(f"pyheart: error: {exc}", file=sys.stderr)
        return 1
    if folder is None:
        why = "PYHEART_NATIVE=off" if mode() == "off" else "no build for these sources"
        print(f"native build: not used ({why}); the Python modules run")
        return 0
    import importlib

    for module in MODULES:
        importlib.import_module(module)
    states = loaded()
    print(f"native build: {folder}")
    for module in MODULES:
        print(f"  {module}: {'native' if states.get(module) else 'python'}")
    return 0 if all(states.values()) else 1


def add_subcommands(sub: Any) -> None:
    """``pyheart native build|status`` on the CLI's subparsers."""
    native = sub.add_parser("native", help="the optional mypyc build of the HL7v2 -> FHIR hot path")
    commands = native.add_subparsers(dest="native_command", metavar="SUBCOMMAND")
    native.set_defaults(func=lambda _args: native.print_help() or 2)
    build_cmd = commands.add_parser(
        "build", help="compile the hot-path modules (C compiler, pyheart[native])"
    )
    build_cmd.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel C compilations")
    build_cmd.set_defaults(func=_cmd_build)
    status = commands.add_parser("status", help="whether this process would convert with the native build")
    status.set_defaults(func=_cmd_status)


__all__ = [
    "GROUP",
    "MODULES",
    "NativeBuildError",
    "add_subcommands",
    "build",
    "build_key",
    "cache_dir",
    "current_build",
    "loaded",
    "mode",
    "package_path",
    "source_files",
]
