"""The console command itself: help, version, one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys

from edgevision import __version__
from edgevision.cli import build_parser


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgevision", *args], capture_output=True, text=True, timeout=60)


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


CORE_COMMANDS = {"serve", "predict", "capture", "display", "run", "train", "iterations", "publish", "export", "score"}


def listed_commands(help_text: str) -> dict[str, str]:
    """The subcommand table of `--help`: name -> its one-line help (argparse indents entries by four)."""
    return dict(re.findall(r"^ {4}(\S+) +(\S.*)$", help_text, flags=re.MULTILINE))


def test_help_lists_every_subcommand() -> None:
    result = run("--help")
    assert result.returncode == 0
    listed = listed_commands(result.stdout)
    registered = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert set(listed) >= CORE_COMMANDS, CORE_COMMANDS - set(listed)
    assert set(listed) == registered  # a command registered without help would be hidden from users


def test_every_listed_command_has_working_help() -> None:
    for command in listed_commands(run("--help").stdout):
        result = run(command, "--help")
        assert result.returncode == 0, (command, result.stderr[-500:])
        assert result.stdout.startswith(f"usage: edgevision {command}"), command


def test_no_command_prints_help_and_fails() -> None:
    result = run()
    assert result.returncode == 2
    assert "usage" in result.stdout.lower()
