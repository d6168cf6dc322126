"""Run every ```cql example in docs/*.md against the sample store and write its output below it.

    python docs/build_docs.py            # rewrite the output blocks
    python docs/build_docs.py --check    # exit 1 if any recorded output is stale (used by the tests)

An example block is a fenced block tagged `cql`; its output is the fenced `text` block right after
it (created if missing). Errors are recorded too, so the docs can show what a mistake looks like.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
BLOCK = re.compile(r"```cql\n(?P<query>.*?)```\n(?:\n?```text\n(?P<output>.*?)```\n)?", re.DOTALL)
MAX_ROWS = 12


def run_example(store, query: str) -> str:
    from commerceql.errors import CommerceQLError

    try:
        result = store.query(query)
    except CommerceQLError as error:
        return error.render() + "\n"
    text = result.to_text(max_rows=MAX_ROWS)
    return text + "\n"


def render(path: Path, store) -> str:
    source = path.read_text(encoding="utf-8")

    def replace(match: re.Match[str]) -> str:
        query = match.group("query")
        output = run_example(store, query)
        return f"```cql\n{query}```\n\n```text\n{output}```\n"

    return BLOCK.sub(replace, source)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that recorded outputs are current")
    parser.add_argument("files", nargs="*", help="markdown files (default: docs/language.md)")
    args = parser.parse_args(argv)
    import commerceql as cql

    store = cql.connect()
    stale = []
    for name in args.files or ["language.md"]:
        path = Path(name) if Path(name).exists() else DOCS / name
        rendered = render(path, store)
        if rendered != path.read_text(encoding="utf-8"):
            stale.append(path)
            if not args.check:
                path.write_text(rendered, encoding="utf-8")
    if args.check and stale:
        print("stale example output in: " + ", ".join(str(p) for p in stale), file=sys.stderr)
        print("run `python docs/build_docs.py` and review the diff", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
