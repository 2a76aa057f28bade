"""The `pyheart` console command."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest

from pyheart.broker.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`pyheart --version` prints the installed version."""
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"pyheart {version('pyheart')}"


def test_plugins_list_runs_as_console_script() -> None:
    """`pyheart plugins list` runs as the installed console script and prints a table header."""
    exe = sys.executable.rsplit("/", 1)[0] + "/pyheart"
    out = subprocess.run([exe, "plugins", "list"], check=True, capture_output=True, text=True).stdout
    assert out.startswith("NAME") or out.strip() == "no plugins installed"


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    """Running without a command prints usage and exits 2."""
    assert main([]) == 2
    assert "usage: pyheart" in capsys.readouterr().out
