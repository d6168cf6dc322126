"""`commerceql sample`: generate a sample store folder.

    commerceql sample --orders 200000 --years 3 --seed 42 --out ./big-store [--anchor today|YYYY-MM-DD]
                      [--sessions-per-order N]

The main CLI wires these in with `add_sample_arguments(subparser)` and `run_sample(args)`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# The light module: the parser is built for every `commerceql --help` (the generator loads in run_sample).
from commerceql.sample.defaults import DEFAULT_ORDERS, DEFAULT_SEED, DEFAULT_YEARS, default_store_path


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--orders", type=int, default=DEFAULT_ORDERS,
                        help=f"number of orders, test orders included (default {DEFAULT_ORDERS:,})")
    parser.add_argument("--years", type=int, default=DEFAULT_YEARS,
                        help=f"calendar years of history ending at the anchor (default {DEFAULT_YEARS})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    parser.add_argument("--sessions-per-order", type=float, default=None, metavar="N",
                        help="online-store sessions per online order, its converting session included "
                             "(default: about 30 up to 100,000 orders, so 3.3%% of human sessions convert; "
                             "10 above, so the sessions do not outgrow the orders 30 to 1); fewer make a "
                             "smaller, faster store with a higher conversion rate")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder to write (default: the bundled store's location, "
                             f"{default_store_path()})")
    parser.add_argument("--anchor", default=None, metavar="today|YYYY-MM-DD",
                        help="the store's 'now': 'today' follows the real clock (manifest as_of null); a date "
                             "means 14:00 store time that day; default 2025-12-15 14:00 America/New_York")
    parser.add_argument("--force", action="store_true", help="write into a folder that already holds files")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--progress", dest="progress", action="store_true", default=None,
                       help="show a progress bar (default: when stderr is a terminal)")
    shown.add_argument("--no-progress", dest="progress", action="store_false")


def _return_freed_arrays_to_the_os() -> None:
    """glibc raises its mmap threshold after the first large free, so later arrays of a few MB land
    on the heap and their memory is kept after they are freed (~300 MB more peak memory at 1M
    orders). A fixed 1 MB threshold keeps every large array in its own mapping, returned when freed.
    Only in this command's process (the CLI); elsewhere (other platforms, no glibc) nothing changes."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    m_mmap_threshold = -3  # glibc's mallopt parameter number
    try:
        ctypes.CDLL("libc.so.6").mallopt(m_mmap_threshold, 1 << 20)
    except (OSError, AttributeError):  # musl or another libc: keep its defaults
        pass


def run_sample(args: argparse.Namespace) -> int:
    from commerceql.sample.generator import SCRATCH_PREFIX, generate_store

    out: Path = args.out if args.out is not None else default_store_path()
    # a killed earlier build's scratch folder alone does not make the folder someone else's
    leftovers_only = out.exists() and all(p.name.startswith(SCRATCH_PREFIX) for p in out.iterdir())
    if out.exists() and not leftovers_only and not getattr(args, "force", False):
        if not (out / "manifest.json").exists():
            print(f"error: {out} is not empty and is not a store; choose another --out", file=sys.stderr)
            return 2
    from commerceql.importers.common import Progress
    from commerceql.sample.generator import TABLES

    _return_freed_arrays_to_the_os()
    started = time.perf_counter()
    enabled = args.progress if args.progress is not None else sys.stderr.isatty()
    progress = Progress(f"generating {args.orders:,} orders", len(TABLES), enabled, unit="tables")
    built: list[str] = []

    def table_done(name: str) -> None:
        built.append(name)
        progress.update(len(built))

    try:
        path = generate_store(out, orders=args.orders, years=args.years, seed=args.seed, anchor=args.anchor,
                              on_table=table_done, sessions_per_order=getattr(args, "sessions_per_order", None))
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        progress.close()
    elapsed = time.perf_counter() - started
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    counts = manifest.get("row_counts", {})
    summary = ", ".join(f"{table} {count:,}" for table, count in counts.items())
    print(f"wrote {path} in {elapsed:.1f}s: {summary}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="commerceql sample", description="Generate a sample store.")
    add_sample_arguments(parser)
    return run_sample(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
