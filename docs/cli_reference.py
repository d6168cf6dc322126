"""Write (or --check) docs/cli.md, the command-line reference, from the CLI's own argument parser.

Every subcommand's `--help` text (options, defaults, examples) is copied verbatim, so the reference
cannot drift from what `commerceql SUBCOMMAND --help` prints.

    python docs/cli_reference.py          # rewrite docs/cli.md
    python docs/cli_reference.py --check  # exit 1 when it is out of date
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent / "cli.md"
ROOT = DOC.parents[1]

INTRO = """\
# Command-line reference

`commerceql` is installed with the package (`make demo` puts it in `.venv/bin/`). Every subcommand
prints this help with `--help`; `commerceql --version` prints the version. Exit codes: 0 success,
2 a problem with the input (the message says what and where), 3 an internal error (a bug: please
report it with `COMMERCEQL_DEBUG=1` set to see the traceback), 130 interrupted.

This page is written from the command's own parser by `docs/cli_reference.py`; a test fails when it
is out of date.
"""


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's subcommands by name, in the order they were added (nested ones as `import shopify`)."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:  # argparse has no public accessor for subparsers
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                for inner, nested in subcommands(sub).items():
                    found[f"{name} {inner}"] = nested
    return found


def render() -> str:
    from commerceql.cli import _build_parser

    # A fixed width keeps the text independent of the terminal that runs the generator.
    os.environ["COLUMNS"] = "100"
    parser = _build_parser()
    for sub in [parser, *subcommands(parser).values()]:
        for action in sub._actions:
            # Defaults such as the sample store's folder are absolute paths of this checkout.
            if action.help and str(ROOT) in action.help:
                action.help = action.help.replace(str(ROOT) + os.sep, "").replace(str(ROOT), ".")
    parts = [INTRO, "\n## `commerceql`\n\n```text\n" + parser.format_help().rstrip() + "\n```\n"]
    for name, sub in subcommands(parser).items():
        parts.append(f"\n## `commerceql {name}`\n\n```text\n" + sub.format_help().rstrip() + "\n```\n")
    return "".join(parts)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not DOC.exists() or DOC.read_text(encoding="utf-8") != text:
            print("docs/cli.md is out of date: run python docs/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
