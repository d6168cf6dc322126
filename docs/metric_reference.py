"""Write (or --check) the "Metric reference" section of docs/metrics.md from the built-in model.

Each table's metrics with type, additivity, formula and definition, as the model files declare
them, so the written definitions and the running ones cannot drift apart.

    python docs/metric_reference.py          # rewrite the section
    python docs/metric_reference.py --check  # exit 1 when it is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

from commerceql.model.semantic import builtin_model

DOC = Path(__file__).resolve().parent / "metrics.md"
START = "## Metric reference\n"
END = "## Notes per table\n"
# The event tables first, as the guide reads; then the account tables in the model's order.
FIRST = ("sales", "orders", "customers", "products", "sessions", "checkouts", "draft_orders")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render() -> str:
    model = builtin_model()
    names = [n for n in FIRST if n in model.tables] + sorted(n for n in model.tables if n not in FIRST)
    out = [START, "\nFormulas use the metric names of the same table; Σ sums over the rows of the table after filters.\n"]
    for name in names:
        table = model.tables[name]
        where = f"Relation `{table.relation}`" + (f", time column `{table.time_column}`." if table.time_column else ".")
        out.append(f"\n### `{name}` metrics\n\n{where}\n\n| metric | type | additive | formula | definition |\n"
                   "|---|---|---|---|---|\n")
        for metric in table.metrics.values():
            if metric.alias_of:
                note = metric.deprecated or metric.description or f"older name of `{metric.alias_of}`"
                out.append(f"| `{metric.name}` | — | — | alias of `{metric.alias_of}` | {_cell(note)} |\n")
                continue
            formula = _cell(metric.formula or "")
            if metric.across_time:
                formula += " (over every period of the query)"
            out.append(f"| `{metric.name}` | {metric.type} | {'yes' if metric.additive else 'no'} | {formula} | "
                       f"{_cell(metric.description)} |\n")
    out.append("\n")
    return "".join(out)


def updated(text: str) -> str:
    start, end = text.index(START), text.index(END)
    return text[:start] + render() + text[end:]


def main(argv: list[str]) -> int:
    text = DOC.read_text(encoding="utf-8")
    new = updated(text)
    if "--check" in argv:
        if new != text:
            print("docs/metrics.md: the metric reference is out of date; run python docs/metric_reference.py",
                  file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
