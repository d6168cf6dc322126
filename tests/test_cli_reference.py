"""The command-line reference (docs/cli.md) is current, and every example in `--help` is a valid command."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from commerceql.cli import _build_parser

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
from cli_reference import subcommands  # noqa: E402


def _examples() -> list[tuple[str, str]]:
    found = []
    for name, sub in subcommands(_build_parser()).items():
        if sub.epilog and sub.epilog.startswith("examples:"):
            found += [(name, line.strip()) for line in sub.epilog.splitlines()[1:] if line.strip()]
    return found


def test_the_cli_reference_is_written_from_the_parser():
    process = subprocess.run([sys.executable, str(ROOT / "docs" / "cli_reference.py"), "--check"],
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stderr


def test_every_top_level_subcommand_has_examples():
    top = [name for name in subcommands(_build_parser()) if " " not in name]
    with_examples = {name for name, _ in _examples()}
    assert top and set(top) <= with_examples, set(top) - with_examples


@pytest.mark.parametrize(("name", "example"), _examples(), ids=lambda value: value[:60])
def test_each_example_is_a_valid_command(name, example):
    words = shlex.split(example)
    assert words[0] == "commerceql" and words[1] == name.split()[0]
    try:
        args = _build_parser().parse_args(words[1:])
    except SystemExit as exit_:  # argparse exits on a bad command line
        raise AssertionError(f"`{example}` is not accepted: exit {exit_.code}") from None
    assert isinstance(args, argparse.Namespace) and args.command == name.split()[0]
