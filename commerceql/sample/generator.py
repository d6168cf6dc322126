"""A realistic, deterministic sample store: Northwind Supply Co. (workwear, tools and job-site supplies).

`generate_store(out_dir, orders=..., years=..., seed=...)` writes one Parquet file per physical table
plus `manifest.json`. Everything is vectorised with numpy; the same seed and size give byte-identical
files. The largest tables are converted to Arrow and written one row group at a time (`ChunkedTable`),
with the same bytes as a whole-table write. See docs/data-model.md for the tables and for how the
data is shaped.

Money is computed in integer cents throughout and written as DECIMAL(18,2), so every identity holds
to the cent. Instants are int64 microseconds (UTC) and written as TIMESTAMPTZ.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pyarrow as pa

from commerceql.sample import _vocab as V
from commerceql.sample._arrow import (
    ROW_GROUP,
    ChunkedTable,
    bools,
    categorical,
    ints,
    money,
    string_lists,
    strings,
    timestamp,
    write_table,
)
from commerceql.sample._calendar import (
    DAY_US,
    HOUR_US,
    HOURLY_B2B,
    HOURLY_ONLINE,
    HOURLY_POS,
    TIMEZONE,
    US,
    Calendar,
)
from commerceql.sample._catalog import (
    GROUP_B2B,
    GROUP_DTC_COLD,
    GROUP_DTC_WARM,
    TYPE_NAMES,
    build_catalog,
    sample_variants,
)
from commerceql.sample._spill import ScratchColumns, merge_positions

GENERATOR_VERSION = 7  # 7: inventory levels by day and location, payment transactions
FORMAT = "commerceql-store"
FORMAT_VERSION = 1
STORE_NAME = "Northwind Supply Co."
CURRENCY = "USD"
DEFAULT_AS_OF = dt.datetime(2025, 12, 15, 14, 0, tzinfo=ZoneInfo(TIMEZONE))
#: Prefix of the scratch folder a build keeps inside its output folder (session columns on disk).
SCRATCH_PREFIX = ".generating-"

TABLES = (
    "products", "variants", "companies", "customers", "orders", "line_items", "refunds",
    "refund_line_items", "checkouts", "sessions", "draft_orders", "sales", "inventory_levels", "transactions",
)
# Inventory locations: the flagship store stocks what it sells at the counter; everything else
# ships from the warehouse.
INVENTORY_LOCATIONS = ("Main Warehouse", "Flagship Store")
WAREHOUSE, FLAGSHIP = 0, 1
# Seed streams beyond the 16 of the original tables: new tables draw from streams of their own, so
# adding them leaves every earlier table byte-identical.
INVENTORY_STREAM, PAYMENTS_STREAM = 16, 17
TRANSACTION_KINDS = ("sale", "refund", "authorization", "void")
TRANSACTION_STATUSES = ("success", "failure")
PAYMENT_METHODS = ("Credit card", "Shop Pay", "PayPal", "Cash", "Bank deposit")
PAYMENT_GATEWAYS = ("shopify_payments", "shopify_payments", "paypal", "cash", "manual")
CARD_BRANDS = ("visa", "master", "american_express", "discover")
# processing fee of a successful sale: basis points and fixed cents, online / in person
FEE_BP = np.array([290, 290, 349, 0, 0])
FEE_FIXED = np.array([30, 30, 49, 0, 0])
FEE_BP_IN_PERSON, FEE_FIXED_IN_PERSON = 260, 10

# share of human online-store sessions that place an order (the default rate: ~30 sessions per order)
HUMAN_CONVERSION = 0.033
# Above this many orders the default is LARGE_STORE_SESSIONS_PER_ORDER: at the small store's rate the
# sessions table would grow 30x faster than the order lines (30M rows and ~3 GB of memory at 1M orders).
LARGE_STORE_ORDERS = 100_000
LARGE_STORE_SESSIONS_PER_ORDER = 10.0


def default_sessions_per_order(orders: int) -> float | None:
    """Human online-store sessions per online order when none is asked for. None: the small store's
    rate (3.3% of human sessions convert); large stores get 10 (10% convert: a high-intent trade
    store's rate, and memory bounded by the orders rather than by 30x the orders)."""
    return None if orders <= LARGE_STORE_ORDERS else LARGE_STORE_SESSIONS_PER_ORDER

CHANNELS = ("Online Store", "Point of Sale", "Wholesale", "Draft Orders")
SOURCES = ("web", "pos", "b2b_portal", "shopify_draft_order")
ONLINE, POS, WHOLESALE, DRAFT = 0, 1, 2, 3
KIND_DTC, KIND_B2B, KIND_TEST = 0, 1, 2
TIERS = ("Enterprise", "Mid-market", "Small business")
INDUSTRIES = ("Contractor", "Distributor", "Retailer", "OEM", "Manufacturing", "Facilities Management",
              "Government & Education")
TERMS = ("Due on receipt", "Net 30", "Net 60")
TERMS_DAYS = np.array([0, 30, 60])
PRICE_LISTS = ("Enterprise Contract", "Distributor Net", "Wholesale Standard", "Contractor Pro")
PRICE_LIST_PCT = np.array([35, 40, 25, 15])
# quantity price breaks of every price list: a line of at least `min` units gets `pct` more off the
# contract price
VOLUME_BREAKS = ("10+", "50+", "100+")
VOLUME_BREAK_MIN = np.array([10, 50, 100])
VOLUME_BREAK_PCT = np.array([3, 6, 10])
# key OEM accounts: when each is onboarded, as a fraction of the store's history
KEY_ACCOUNT_START = (0.0, 0.04, 0.08, 0.15)
INVOICE_STATUS = ("paid", "open", "overdue", "voided")
# B2B portal pages (account and quick-order pages; /account/login and /pages/wholesale are also
# online-store pages)
PORTAL_PAGES = ("/account/login", "/account/orders", "/pages/quick-order", "/pages/wholesale")
SALES_REGIONS = ("Northeast", "Midwest", "South", "West", "International")
CODES = tuple(V.DISCOUNT_CODES)
CODE_PCT = np.array([V.DISCOUNT_CODES[c][0] for c in CODES] + [0])
CODE_FIXED = np.array([V.DISCOUNT_CODES[c][1] for c in CODES] + [0])
NO_CODE = len(CODES)
SHIP_METHODS = ("Standard", "Expedited", "Free Standard", "International", "In store", "Freight", "Phone order")
CANCEL_REASONS = ("customer", "fraud", "inventory", "declined", "other")
RETURN_REASONS = ("size_too_small", "size_too_large", "style", "changed_mind", "defective",
                  "not_as_described", "wrong_item", "damaged_in_transit")
RESTOCK_TYPES = ("return", "no_restock", "cancel")
FIN_STATUS = ("paid", "pending", "partially_refunded", "refunded", "voided")
FUL_STATUS = ("fulfilled", "unfulfilled")
STAGES = ("cart", "information", "shipping", "payment", "completed")
DEVICES = ("mobile", "desktop", "tablet")
RFM = ("Prospects", "New", "Champions", "Loyal", "Promising", "Needs attention", "At risk", "Hibernating", "Lost")


@dataclass
class Locations:
    country: np.ndarray  # code into countries
    region: np.ndarray  # code into regions
    city: np.ndarray  # code into cities
    countries: list[str]
    regions: list[str]
    cities: list[str]
    tax_bp: np.ndarray
    cold: np.ndarray
    sales_region: np.ndarray  # code into SALES_REGIONS
    currency: list[str]  # per location
    weight: np.ndarray  # DTC demand weight
    us: np.ndarray
    home: np.ndarray  # in the flagship store's catchment
    store: int  # the flagship store's location


def _address_columns(loc: Locations, bill: np.ndarray, shp: np.ndarray, no_ship: np.ndarray) -> dict[str, pa.Array]:
    """Billing and shipping country, region and city of each row (orders and sales alike), in
    the files' column order; no shipping address where `no_ship`."""
    return {
        "billing_country": categorical(loc.country[bill], loc.countries),
        "billing_region": categorical(loc.region[bill], loc.regions),
        "billing_city": categorical(loc.city[bill], loc.cities),
        "shipping_country": categorical(loc.country[shp], loc.countries, null=no_ship),
        "shipping_region": categorical(loc.region[shp], loc.regions, null=no_ship),
        "shipping_city": categorical(loc.city[shp], loc.cities, null=no_ship),
    }


def _locations() -> Locations:
    rows: list[tuple[str, str, str, str, int, bool, str, float, bool]] = []
    us_total = sum(s[2] for s in V.US_STATES)
    for state, region, pop, tax, cold, cities in V.US_STATES:
        cw = np.array([0.5 ** i for i in range(len(cities))])
        cw = cw / cw.sum()
        for city, w in zip(cities, cw, strict=True):
            share = (1 - V.INTERNATIONAL_DTC_SHARE) * pop / us_total * w
            rows.append(("United States", state, city, "USD", tax, cold, region, share, True))
    intl_total = sum(c[2] for c in V.INTERNATIONAL)
    for country, currency, share, cold, regions in V.INTERNATIONAL:
        n = sum(len(c) for _, c in regions)
        for region, cities in regions:
            for city in cities:
                w = V.INTERNATIONAL_DTC_SHARE * share / intl_total / n
                rows.append((country, region, city, currency, 0, cold, "International", w, False))
    countries = sorted({r[0] for r in rows})
    regions = sorted({r[1] for r in rows})
    cities = sorted({r[2] for r in rows})
    store = next(i for i, r in enumerate(rows) if (r[0], r[1], r[2]) == V.STORE_LOCATION)
    return Locations(
        country=np.array([countries.index(r[0]) for r in rows], dtype=np.int16),
        region=np.array([regions.index(r[1]) for r in rows], dtype=np.int16),
        city=np.array([cities.index(r[2]) for r in rows], dtype=np.int16),
        countries=countries, regions=regions, cities=cities,
        tax_bp=np.array([r[4] for r in rows], dtype=np.int64),
        cold=np.array([r[5] for r in rows]),
        sales_region=np.array([SALES_REGIONS.index(r[6]) for r in rows]),
        currency=[r[3] for r in rows],
        weight=np.array([r[7] for r in rows]),
        us=np.array([r[8] for r in rows]),
        home=np.array([r[1] in V.HOME_STATES for r in rows]),
        store=store,
    )


def _pick(rng: np.random.Generator, n: int, p: np.ndarray | list[float], compact: bool = False) -> np.ndarray:
    """n draws of category codes with probabilities proportional to p.

    Large draws use a 2**20-entry lookup table instead of a binary search (several times faster;
    probabilities are then resolved to about one in a million).
    """
    p = np.asarray(p, dtype=float)
    cdf = np.cumsum(p / p.sum())
    if n > 200_000:
        grid = (np.arange(1 << 20) + 0.5) / (1 << 20)
        table = np.minimum(np.searchsorted(cdf, grid, side="right"), len(p) - 1)
        table = table.astype(np.int16 if len(p) < 32_000 else np.int32)
        out = table[rng.integers(0, 1 << 20, n, dtype=np.uint32)]
        return out if compact else out.astype(np.int64)
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(p) - 1)


def _unique_labels(labels: list[str]) -> tuple[list[str], np.ndarray]:
    """Deduplicated labels (first occurrence order) and the map from old to new codes."""
    index: dict[str, int] = {}
    mapping = np.array([index.setdefault(label, len(index)) for label in labels], dtype=np.int64)
    return list(index), mapping


def _remap(codes: np.ndarray, labels: list[str]) -> tuple[np.ndarray, list[str]]:
    unique, mapping = _unique_labels(labels)
    return mapping[codes], unique


def _within(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups of the given sizes: the group of each element and its position in the group."""
    group = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return group, np.arange(len(group)) - starts[group]


def _sum_by(group: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(group, weights=values, minlength=n).round().astype(np.int64)


def _pct_of(amount: np.ndarray, pct: np.ndarray) -> np.ndarray:
    return (amount * pct + 50) // 100


def _bp_of(amount: np.ndarray, bp: np.ndarray) -> np.ndarray:
    return (amount * bp + 5000) // 10000


# ---------------------------------------------------------------------------------------------
def resolve_as_of(anchor: Any) -> tuple[dt.datetime, str | None]:
    """The store's as_of instant and what the manifest records (None for `today`)."""
    tz = ZoneInfo(TIMEZONE)
    if anchor is None:
        return DEFAULT_AS_OF, DEFAULT_AS_OF.isoformat()
    if isinstance(anchor, str) and anchor.lower() in ("today", "now"):
        now = dt.datetime.now(tz).replace(second=0, microsecond=0)
        return now, None
    if isinstance(anchor, dt.datetime):
        value = anchor if anchor.tzinfo else anchor.replace(tzinfo=tz)
        return value, value.isoformat()
    if isinstance(anchor, dt.date):
        value = dt.datetime(anchor.year, anchor.month, anchor.day, 14, 0, tzinfo=tz)
        return value, value.isoformat()
    if isinstance(anchor, str):
        try:
            parsed = dt.datetime.fromisoformat(anchor)
        except ValueError as exc:
            raise ValueError(f"anchor must be 'today', YYYY-MM-DD or an ISO datetime, not {anchor!r}") from exc
        if len(anchor) <= 10:
            parsed = parsed.replace(hour=14)
        return resolve_as_of(parsed)
    raise TypeError(f"unsupported anchor {anchor!r}")


def generate_store(
    out_dir: str | os.PathLike[str],
    *,
    orders: int = 50_000,
    years: int = 3,
    seed: int = 42,
    anchor: Any = None,
    name: str = STORE_NAME,
    on_table: Callable[[str], None] | None = None,
    sessions_per_order: float | None = None,
    row_group_size: int = ROW_GROUP,
) -> Path:
    """Write a sample store (Parquet files + manifest.json) into `out_dir` and return its path.

    `sessions_per_order`: human online-store sessions per online order (its converting session
    included; bots come on top, 8% of the human sessions). None: `default_sessions_per_order(orders)`
    (the manifest records the rate only when it is not the small store's 1 / HUMAN_CONVERSION).
    `row_group_size`: rows per Parquet row group, which is also how many rows of a large table are
    converted to Arrow at a time (the files' bytes depend on it; tests lower it to write several).
    `on_table(name)` is called as each table has been built (for a progress bar)."""
    if orders < 20:
        raise ValueError("a sample store needs at least 20 orders")
    if not 1 <= years <= 20:
        raise ValueError("years must be between 1 and 20")
    if sessions_per_order is not None and not 1.0 <= sessions_per_order <= 1000.0:
        raise ValueError("sessions per order must be between 1 and 1000")
    if row_group_size < 1:
        raise ValueError("row_group_size must be positive")
    if sessions_per_order is None:
        sessions_per_order = default_sessions_per_order(orders)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    as_of, manifest_as_of = resolve_as_of(anchor)
    # A killed earlier run (SIGKILL skips the `finally` below) leaves its scratch folder: drop it.
    for leftover in out.glob(f"{SCRATCH_PREFIX}*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
    # finished session columns wait on disk here until written (removed at the end, also on error)
    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=out))
    try:
        builder = _Builder(orders=orders, years=years, seed=seed, as_of=as_of,
                           sessions_per_order=sessions_per_order, scratch=scratch)
        futures = {}
        # three writers: the sessions file (written from its scratch columns while the rest is built)
        # takes one for the whole build; the other two write the rest as they come, so finished
        # tables never queue in memory behind it
        with ThreadPoolExecutor(max_workers=3) as pool:
            for table, columns in builder.tables():
                futures[table] = pool.submit(write_table, out / f"{table}.parquet", columns,
                                             builder.SORTED[table], row_group_size)
                futures[table].add_done_callback(lambda _, table=table: builder.table_written(table))
                if isinstance(columns, ChunkedTable) and not columns.from_files:
                    # the large tables: their source columns stay alive until written, so the next
                    # table is built only once they are (bounded memory before speed; small tables
                    # and tables read from scratch files overlap)
                    futures[table].result()
                del columns
                if on_table is not None:
                    on_table(table)
            counts = {table: futures[table].result() for table in TABLES}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "currency": CURRENCY,
        "timezone": TIMEZONE,
        "as_of": manifest_as_of,
        "data_start": builder.start.isoformat(),
        "generator": {"version": GENERATOR_VERSION, "seed": seed, "orders": orders, "years": years,
                      # recorded unless it is the small store's rate: such stores keep the manifest they had
                      **({} if sessions_per_order is None else {"sessions_per_order": sessions_per_order})},
        "tables": {t: f"{t}.parquet" for t in TABLES},
        "row_counts": counts,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out


class _SomeRows:
    """The values of a column at some of its rows (sorted positions), indexed like the whole column."""

    def __init__(self, positions: np.ndarray, values: np.ndarray) -> None:
        self.positions, self.values = positions, values

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        at = np.searchsorted(self.positions, rows)
        if len(rows) and not np.array_equal(self.positions[np.minimum(at, len(self.positions) - 1)], rows):
            raise IndexError("a row that was not kept")  # a generator bug, not bad input
        return self.values[at]


def _narrowest(values: np.ndarray) -> np.ndarray | None:
    """`values` (int64) as the narrowest integer type that holds every one of them, or None."""
    if not len(values):
        return None
    low, high = int(values.min()), int(values.max())
    for dtype in (np.int8, np.int16, np.int32):
        limits = np.iinfo(dtype)
        if limits.min <= low and high <= limits.max:
            return values.astype(dtype)
    return None


# int64 builder columns at least this long are held in the narrowest integer type that fits them
NARROW_FROM = 65_536


class _Builder:
    """Builds the store's tables from the seed, column by column.

    Memory: per-order and per-line columns (codes, ids, counts, cents) are int64 while computed, but
    most of their values fit in 8, 16 or 32 bits. Every long int64 array assigned to an attribute is
    held in the narrowest type that fits it exactly (`__setattr__`), and reading the attribute gives
    it back as int64 (a new array: same values, same dtype, so every computation and every file is
    as before). So attributes are never modified in place (fill a local, then assign it); the
    widened copy is read-only, so such a write raises instead of being silently lost.
    `_rows_of(name, rows)` widens only the rows asked for (the row-group writers use it).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        narrow: dict[str, np.ndarray] = self.__dict__.setdefault("_narrow", {})
        narrow.pop(name, None)
        if (isinstance(value, np.ndarray) and value.dtype == np.int64 and value.ndim == 1
                and len(value) >= NARROW_FROM and not name.startswith("_")):
            held = _narrowest(value)
            if held is not None:
                self.__dict__.pop(name, None)
                narrow[name] = held
                return
        object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:  # only for names not found the usual way
        held = self.__dict__.get("_narrow", {}).get(name)
        if held is None:
            raise AttributeError(name)
        widened = held.astype(np.int64)
        # read-only, so a write into it (which would change a copy, not the column) fails loudly
        widened.flags.writeable = False
        return widened

    def __delattr__(self, name: str) -> None:
        if name in self.__dict__.get("_narrow", {}):
            del self._narrow[name]
        else:
            object.__delattr__(self, name)

    def _rows_of(self, name: str, rows: slice | np.ndarray) -> np.ndarray:
        """`getattr(self, name)[rows]`, widening only those rows of a narrowed column."""
        held = self._narrow.get(name)
        if held is None:
            return getattr(self, name)[rows]
        return held[rows].astype(np.int64)

    def __init__(self, *, orders: int, years: int, seed: int, as_of: dt.datetime, scratch: Path,
                 sessions_per_order: float | None = None) -> None:
        self._narrow: dict[str, np.ndarray] = {}
        self.n_orders = orders
        self.scratch = scratch
        self.sessions_per_order = sessions_per_order
        self.years = years
        local = as_of.astimezone(ZoneInfo(TIMEZONE))
        # data start: the first day of the month after (as_of - years), so the store holds `years`
        # whole years up to as_of's month (2023-01-01 for the default as_of 2025-12-15 and 3 years)
        year, month = local.year - years, local.month
        self.start = dt.date(year + (month == 12), month % 12 + 1, 1)
        self.as_of = int(as_of.timestamp() * US)
        self.seed_sequence = np.random.SeedSequence(seed)
        streams = self.seed_sequence.spawn(16)
        self.rng = [np.random.default_rng(s) for s in streams]
        self.elapsed = 0.0

    # -----------------------------------------------------------------------------------------
    SORTED = {
        "products": ("product_id",), "variants": ("variant_id",), "companies": ("company_id",),
        "customers": ("customer_id", "created_at"), "orders": ("order_id", "created_at"),
        "line_items": ("line_item_id", "order_id"), "refunds": ("refund_id", "created_at"),
        "refund_line_items": ("refund_line_item_id", "refund_id"), "checkouts": ("checkout_id", "created_at"),
        "sessions": ("session_id", "started_at"), "draft_orders": ("draft_order_id", "created_at"),
        "sales": ("sale_id", "happened_at"),
        "inventory_levels": ("day",), "transactions": ("transaction_id", "created_at"),
    }

    def tables(self) -> Iterator[tuple[str, dict[str, pa.Array]]]:
        """Generate the store, yielding each table as soon as it is complete (so it can be written
        while the next one is generated)."""
        r = self.rng
        self.cal = cal = Calendar(self.start, self.as_of, r[0])
        self.start_us = int(cal.day_start[0])
        self.loc = _locations()
        n_products = int(np.clip(300 + self.n_orders // 2500, 300, 520))
        self.cat = build_catalog(r[1], cal, n_products)
        self.acq = cal.warp(cal.daily_online, HOURLY_ONLINE, growth_rate=np.log(1.32))
        self.seas = cal.warp(cal.daily_online, HOURLY_ONLINE, normalise_per_day=True)
        self._companies(r[2])
        self._b2b_orders(r[3])
        self._dtc_customers(r[4])
        self._assemble_orders(r[5])
        # sessions first: the largest table is written while the rest is generated
        self._sessions(r[10])
        # what checkouts read of the sessions, before the sessions file is written in the background
        self._keep_checkout_sessions()
        yield "sessions", self._sessions_table()
        self._lines(r[6])
        self._money(r[7])
        self._fulfil_and_cancel(r[8])
        self._returns(r[9])
        self._statuses()
        self._customer_stats()
        yield "products", self._products_table()
        yield "variants", self._variants_table()
        yield "companies", self._companies_table()
        yield "customers", self._customers_table(r[13])
        self._checkouts(r[11])
        yield "checkouts", self._checkouts_table()
        for name in [name for name in (*vars(self), *self._narrow) if name.startswith("ck_")]:
            delattr(self, name)
        for name in ("s_started", "s_duration", "s_cust", "s_device", "s_loc", "s_conv_pos",
                     "s_nonconv_reached_pos", "s_portal_conv_pos", "s_portal_reached_pos"):
            delattr(self, name)
        self._drafts(r[12])
        yield "draft_orders", self._drafts_table()
        yield "orders", self._orders_table()
        yield "line_items", self._line_items_table()
        yield "refunds", self._refunds_table()
        yield "refund_line_items", self._refund_line_items_table()
        yield "sales", self._sales_table()
        yield "inventory_levels", self._inventory_table(self._stream(INVENTORY_STREAM))
        yield "transactions", self._transactions_table(self._stream(PAYMENTS_STREAM))

    # ---- companies ---------------------------------------------------------------------------
    def _companies(self, rng: np.random.Generator) -> None:
        cal, loc = self.cal, self.loc
        target = int(round(0.055 * self.n_orders))
        self.b2b_target = target
        end_lapse = self.as_of - 200 * DAY_US
        span = self.as_of - self.start_us
        b2b_acq = cal.warp(cal.business_day.astype(float) + 0.02, HOURLY_B2B, growth_rate=np.log(1.45))
        pool = max(8, target // 8)
        # key OEM accounts: up to four large Enterprise OEMs, onboarded in the first sixth of the period
        n_key = min(len(KEY_ACCOUNT_START), int(target / self.years / 200))  # one per ~200 B2B orders a year
        while True:
            n = pool
            tier = _pick(rng, n, [0.12, 0.33, 0.55])
            industry = _pick(rng, n, [0.30, 0.18, 0.15, 0.12, 0.10, 0.10, 0.05])
            created = np.where(
                rng.random(n) < 0.25,
                self.start_us + (rng.random(n) * 45 * DAY_US).astype(np.int64),
                b2b_acq.sample(rng, n),
            )
            key = np.arange(n) < n_key
            tier = np.where(key, 0, tier)
            industry = np.where(key, 3, industry)
            key_start = np.zeros(n)
            key_start[:n_key] = KEY_ACCOUNT_START[:n_key]
            created = np.where(key, self.start_us + ((key_start + rng.random(n) * 0.02) * span).astype(np.int64),
                               created)
            first = created + ((1.0 + rng.exponential(12.0, n)) * DAY_US).astype(np.int64)
            # reorder rhythm: Enterprise and Mid-market accounts order on a regular interval of their
            # own (gamma gaps with a high shape: modest jitter); small businesses order irregularly
            regular = tier < 2
            lo = np.array([14.0, 25.0, 1.0])[tier]
            hi = np.array([35.0, 60.0, 1.0])[tier]
            cadence = np.where(regular, np.exp(rng.uniform(np.log(lo), np.log(hi))),
                               60.0 * np.exp(rng.normal(0, 0.35, n)))
            cadence = np.where(industry == 1, cadence * 0.8, cadence)  # distributors restock more often
            cadence = np.where(regular, np.maximum(cadence, 14.0), cadence)
            cadence = np.where(key, rng.uniform(14.0, 20.0, n), cadence)
            shape = np.select([key, tier == 0, tier == 1], [25.0, 16.0, 10.0], 2.5)
            # what becomes of each account: regular accounts churn (stop > 200 days before as_of),
            # drift overdue (stop 2.5-5 intervals before as_of), pause and reactivate, or keep
            # going; a low-discrepancy sequence over the pool keeps these shares steady in any prefix
            fate_u = (rng.random() + np.arange(n) * 0.6180339887498949) % 1.0
            u = rng.random(n)
            churn = np.where(regular, fate_u < 0.12, u < 0.22) & (end_lapse - first > 90 * DAY_US) & ~key
            churn_at = first + (rng.uniform(0.25, 0.95, n) * (end_lapse - first)).astype(np.int64)
            overdue_days = np.minimum(rng.uniform(2.5, 5.0, n) * cadence, 170.0)
            overdue_at = self.as_of - (overdue_days * DAY_US).astype(np.int64)
            overdue = (regular & (fate_u >= 0.12) & (fate_u < 0.24) & ~key
                       & (overdue_at - first > 5 * cadence * DAY_US))
            lapse_at = np.select([churn, overdue], [churn_at, overdue_at], -1)
            # a pause of 90-240 days after a few orders, with a few intervals or more after it
            pause_len = (rng.uniform(90.0, 240.0, n) * DAY_US).astype(np.int64)
            room = self.as_of - first - (6 * cadence * DAY_US).astype(np.int64) - pause_len
            pause_at = (first + (3 * cadence * DAY_US).astype(np.int64)
                        + (rng.random(n) * np.maximum(room, 0)).astype(np.int64))
            pauses = (np.where(regular, (fate_u >= 0.24) & (fate_u < 0.36), u > 0.95) & ~key & ~churn & ~overdue
                      & (room > 0))
            pause_at = np.where(pauses, pause_at, -1)
            pause_len = np.where(pauses, pause_len, 0)
            stop = np.where(lapse_at > 0, lapse_at, self.as_of)
            expected = np.where(first < stop, 1 + (stop - first - pause_len) / DAY_US / cadence, 0)
            cum = np.cumsum(expected)
            if cum[-1] >= target or pool > 100_000:
                break
            pool *= 2
        m = int(min(np.searchsorted(cum, target) + 1, n)) if target > 0 else 0
        self.n_companies = m
        sl = np.argsort(created[:m], kind="stable")  # company ids follow creation time
        self.c_tier, self.c_industry = tier[sl], industry[sl]
        self.c_created, self.c_first, self.c_cadence = created[sl], first[sl], cadence[sl]
        self.c_lapse, self.c_stop = lapse_at[sl], stop[sl]
        self.c_shape, self.c_key = shape[sl], key[sl]
        self.c_pause_at, self.c_pause_len = pause_at[sl], pause_len[sl]
        industry = self.c_industry
        # location: sales region then a city in it
        region = _pick(rng, m, [0.24, 0.22, 0.28, 0.20, 0.06])
        c_loc = np.empty(m, dtype=np.int64)
        for g in range(len(SALES_REGIONS)):
            idx = np.flatnonzero(region == g)
            cand = np.flatnonzero(loc.sales_region == g)
            c_loc[idx] = cand[_pick(rng, len(idx), loc.weight[cand])]
        self.c_loc = c_loc
        self.c_region = region
        terms = np.where(
            self.c_tier == 0, _pick(rng, m, [0.0, 0.5, 0.5]),
            np.where(self.c_tier == 1, _pick(rng, m, [0.2, 0.7, 0.1]), _pick(rng, m, [0.6, 0.4, 0.0])),
        )
        self.c_terms = terms
        self.c_price_list = np.where(
            industry == 1, 1, np.where(self.c_tier == 0, 0, np.where(industry == 0, 3, 2))
        )
        self.c_tax_exempt = np.where(np.isin(industry, [1, 2, 6]), rng.random(m) < 0.9, rng.random(m) < 0.35)
        reps = []
        for i in range(m):
            choices = V.SALES_REPS[SALES_REGIONS[region[i]]]
            if self.c_tier[i] == 2 and rng.random() < 0.3:
                reps.append(V.HOUSE_ACCOUNT)
            else:
                reps.append(choices[rng.integers(len(choices))])
        self.c_rep = reps
        names, seen = [], set()
        for i in range(m):
            ind = INDUSTRIES[industry[i]]
            for _ in range(50):
                stem = V.COMPANY_STEMS[rng.integers(len(V.COMPANY_STEMS))]
                noun = V.COMPANY_NOUNS[ind][rng.integers(len(V.COMPANY_NOUNS[ind]))]
                suffix = V.COMPANY_SUFFIXES[rng.integers(len(V.COMPANY_SUFFIXES))]
                name = f"{stem} {noun} {suffix}".strip()
                if name not in seen:
                    break
            else:
                name = f"{name} #{i + 1}"
            seen.add(name)
            names.append(name)
        self.c_name = names
        # contacts (B2B buyers are customers)
        n_contacts = np.where(self.c_tier == 0, rng.integers(3, 7, m),
                              np.where(self.c_tier == 1, rng.integers(2, 5, m), rng.integers(1, 3, m)))
        self.k_company, pos = _within(n_contacts)
        nk = len(self.k_company)
        self.k_primary = pos == 0
        role = rng.integers(0, len(V.B2B_ROLES), nk)
        role = np.where(self.k_primary, np.where(self.c_tier[self.k_company] == 2, 5, 0), role)
        self.k_role = role
        self.k_first = rng.integers(0, len(V.FIRST_NAMES), nk)
        self.k_last = rng.integers(0, len(V.LAST_NAMES), nk)
        self.k_created = np.minimum(
            self.c_created[self.k_company] + (rng.random(nk) * 2 * DAY_US).astype(np.int64), self.as_of)
        self.c_contact_start = np.cumsum(n_contacts) - n_contacts
        self.c_n_contacts = n_contacts

    def _b2b_orders(self, rng: np.random.Generator) -> None:
        m = self.n_companies
        if m == 0:
            self.b_company = np.zeros(0, dtype=np.int64)
            self.b_t = np.zeros(0, dtype=np.int64)
            return
        window = (self.c_stop - self.c_first) / DAY_US
        # irregular accounts draw more gaps: their short gaps are more often short
        slack = np.where(self.c_shape >= 10, 1.3, 1.6)
        n_gaps = np.maximum(0, np.ceil(window / self.c_cadence * slack + 4)).astype(np.int64)
        comp, _ = _within(n_gaps)
        shape = self.c_shape[comp]
        gaps = rng.gamma(shape, 1 / shape) * self.c_cadence[comp]
        cs = np.cumsum(gaps)
        before = np.concatenate([[0.0], cs])[np.cumsum(n_gaps) - n_gaps]
        offset = np.concatenate([np.zeros(m), cs - before[comp]])
        company = np.concatenate([np.arange(m), comp])
        t = np.concatenate([self.c_first, self.c_first[comp]]) + (offset * DAY_US).astype(np.int64)
        # reactivated accounts: nothing during the pause, then the same rhythm again
        pause_at = self.c_pause_at[company]
        t = np.where((pause_at >= 0) & (t >= pause_at), t + self.c_pause_len[company], t)
        keep = t < self.c_stop[company]
        company, t = company[keep], t[keep]
        t = self._retime(rng, t, HOURLY_B2B, business_only=True)
        # tiny stores: thin B2B so it stays a minority of orders
        cap = max(self.b2b_target * 1.5, 3)
        if len(t) > cap:
            keep = np.sort(rng.choice(len(t), size=int(cap), replace=False))
            company, t = company[keep], t[keep]
        self.b_company, self.b_t = company, t

    def _retime(self, rng: np.random.Generator, t: np.ndarray, hourly: np.ndarray,
                business_only: bool = False) -> np.ndarray:
        moved = self.cal.retime(rng, t, hourly, business_only=business_only)
        return np.where(moved < 0, t, moved)

    # ---- DTC customers and their orders -----------------------------------------------------
    def _dtc_customers(self, rng: np.random.Generator) -> None:
        n_b2b = len(self.b_t)
        self.n_test = max(1, round(self.n_orders * 0.002)) if self.n_orders >= 100 else 0
        target = self.n_orders - n_b2b - self.n_test
        if target < 1:
            raise ValueError("too few orders for the B2B share; ask for more orders")
        seg_p = [0.56, 0.29, 0.12, 0.03]
        churn = np.array([1.0, 0.45, 0.17, 0.055])
        cadence = np.array([1.0, 110.0, 55.0, 21.0])
        acq, seas = self.acq, self.seas
        pool = int(target / 1.5) + 50
        while True:
            n = pool
            seg = _pick(rng, n, seg_p)
            k = np.minimum(rng.geometric(churn[seg]), 200)
            t0 = acq.sample(rng, n)
            s0 = seas.at(t0)
            cad = cadence[seg] * np.exp(rng.normal(0, 0.3, n))
            cust, _ = _within(k - 1)
            gaps = rng.gamma(2.5, 1 / 2.5, len(cust)) * cad[cust]
            cs = np.cumsum(gaps)
            first_gap = np.cumsum(k - 1) - (k - 1)
            before = np.concatenate([[0.0], cs])[first_gap]
            s = s0[cust] + cs - before[cust]
            keep = s < seas.total * 0.999999
            counts = 1 + np.bincount(cust[keep], minlength=n)
            if counts.sum() >= target:
                break
            pool = int(pool * 1.6)
        cum = np.cumsum(counts)
        m = int(np.searchsorted(cum, target) + 1)
        allowed = counts[:m].copy()
        allowed[m - 1] = target - (cum[m - 2] if m > 1 else 0)
        # repeat orders of the chosen customers, earliest first, within their allowance
        rc, rs = cust[keep], s[keep]
        sel = rc < m
        rc, rs = rc[sel], rs[sel]
        _, pos = _within(np.bincount(rc, minlength=m))
        ok = pos < allowed[rc] - 1
        rc, rs = rc[ok], rs[ok]
        self.d_seg = seg[:m]
        self.d_loc = self.loc_pick(rng, m)
        self.d_local = self.loc.home[self.d_loc] & (rng.random(m) < 0.6)
        self.d_first = rng.integers(0, len(V.FIRST_NAMES), m)
        self.d_last = rng.integers(0, len(V.LAST_NAMES), m)
        o_cust = np.concatenate([np.arange(m), rc])
        o_t = np.concatenate([t0[:m], seas.time(rs)])
        n = len(o_t)
        chan = np.where(self.d_local[o_cust] & (rng.random(n) < 0.5), POS, ONLINE)
        chan = np.where((chan == ONLINE) & (rng.random(n) < 0.008), DRAFT, chan)
        o_t = np.where(chan == POS, self._retime(rng, o_t, HOURLY_POS), o_t)
        o_t = np.where(chan == DRAFT, self._retime(rng, o_t, HOURLY_B2B, business_only=True), o_t)
        self.o_dtc_cust, self.o_dtc_t, self.o_dtc_chan = o_cust, o_t, chan
        # customers who signed up but never ordered
        nz = int(m * 0.12) + 1
        self.z_created = acq.sample(rng, nz)
        self.z_loc = self.loc_pick(rng, nz)
        self.z_first = rng.integers(0, len(V.FIRST_NAMES), nz)
        self.z_last = rng.integers(0, len(V.LAST_NAMES), nz)

    def loc_pick(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return _pick(rng, n, self.loc.weight)

    # ---- all orders ---------------------------------------------------------------------------
    def _assemble_orders(self, rng: np.random.Generator) -> None:
        loc = self.loc
        n_dtc_c = len(self.d_seg)
        n_zero = len(self.z_created)
        n_contacts = len(self.k_company)
        n_staff = 3
        # global customer index layout: [dtc with orders | dtc without orders | b2b contacts | staff]
        self.cu_off_zero = n_dtc_c
        self.cu_off_contact = n_dtc_c + n_zero
        self.cu_off_staff = n_dtc_c + n_zero + n_contacts
        self.n_customers = self.cu_off_staff + n_staff
        # B2B orders: buyer = a contact of the company (primary more often)
        b_comp = self.b_company
        nb = len(b_comp)
        ncon = self.c_n_contacts[b_comp] if nb else np.zeros(0, dtype=np.int64)
        pick = np.where(rng.random(nb) < 0.55, 0, (rng.random(nb) * ncon).astype(np.int64))
        b_cust = self.cu_off_contact + self.c_contact_start[b_comp] + pick if nb else np.zeros(0, np.int64)
        quote_p = np.array([0.45, 0.25, 0.10])[self.c_tier[b_comp]] if nb else np.zeros(0)
        b_chan = np.where(rng.random(nb) < quote_p, DRAFT, WHOLESALE)
        # test orders
        nt = self.n_test
        t_t = self.acq.sample(rng, nt)
        t_cust = self.cu_off_staff + rng.integers(0, n_staff, nt)
        cust = np.concatenate([self.o_dtc_cust, b_cust, t_cust]).astype(np.int64)
        t = np.concatenate([self.o_dtc_t, self.b_t, t_t]).astype(np.int64)
        chan = np.concatenate([self.o_dtc_chan, b_chan, np.full(nt, ONLINE)])
        kind = np.concatenate([np.full(len(self.o_dtc_t), KIND_DTC), np.full(nb, KIND_B2B), np.full(nt, KIND_TEST)])
        comp = np.concatenate([np.full(len(self.o_dtc_t), -1), b_comp, np.full(nt, -1)]).astype(np.int64)
        del self.o_dtc_cust, self.o_dtc_t, self.o_dtc_chan  # in cust, t and chan now
        order = np.lexsort((cust, t))
        self.o_t, self.o_cust, self.o_chan, self.o_kind, self.o_comp = (
            t[order], cust[order], chan[order], kind[order], comp[order])
        n = len(self.o_t)
        assert n == self.n_orders, (n, self.n_orders)
        # customer home location
        cu_loc = np.concatenate([self.d_loc, self.z_loc, self.c_loc[self.k_company],
                                 np.full(n_staff, loc.store)])
        self.cu_loc = cu_loc
        bill = cu_loc[self.o_cust]
        gift = (self.o_kind == KIND_DTC) & (rng.random(n) < 0.05)
        ship = np.where(gift, self.loc_pick(rng, n), bill)
        ship = np.where(self.o_chan == POS, -1, ship)
        self.o_bill, self.o_ship = bill, ship
        self.o_is_test = self.o_kind == KIND_TEST
        # customer order sequence over real orders only: test orders are not orders (they have no
        # position in the customer's history, no first/last order date, no new-vs-returning status);
        # seq is 0 on test orders, which the orders table writes as NULL
        real = ~self.o_is_test
        real_idx = np.flatnonzero(real)
        by_cust = real_idx[np.lexsort((self.o_t[real_idx], self.o_cust[real_idx]))]
        counts = np.bincount(self.o_cust[real], minlength=self.n_customers)
        _, pos = _within(counts)
        seq = np.zeros(n, dtype=np.int64)
        seq[by_cust] = pos + 1
        self.o_seq = seq
        self.o_first = seq == 1
        # customers' order statistics (orders are in time order)
        self.cu_orders = counts
        # (filled as locals: a builder attribute read back may be a widened copy, see __setattr__)
        first_order = np.full(self.n_customers, -1, dtype=np.int64)
        first_order[self.o_cust[self.o_first]] = self.o_t[self.o_first]
        self.cu_first_order = first_order
        last = real & (seq == counts[self.o_cust])
        last_order = np.full(self.n_customers, -1, dtype=np.int64)
        last_order[self.o_cust[last]] = self.o_t[last]
        self.cu_last_order = last_order
        self.o_tier = np.where(self.o_comp >= 0, self.c_tier[np.maximum(self.o_comp, 0)], -1)
        # key accounts ramp up over their first year to orders about three times an Enterprise one
        comp = np.maximum(self.o_comp, 0)
        self.o_key = (self.o_comp >= 0) & self.c_key[comp]
        self.o_key_ramp = np.where(self.o_key, np.clip((self.o_t - self.c_first[comp]) / (365 * DAY_US), 0, 1), 0.0)
        self.o_tax_exempt = np.where(self.o_comp >= 0, self.c_tax_exempt[np.maximum(self.o_comp, 0)], False)
        self.o_month = self.cal.month_of(self.o_t)
        self.o_seg = np.where(self.o_cust < n_dtc_c, self.d_seg[np.minimum(self.o_cust, n_dtc_c - 1)], -1)

    # ---- line items -------------------------------------------------------------------------
    def _lines(self, rng: np.random.Generator) -> None:
        cat, n = self.cat, self.n_orders
        kind, chan = self.o_kind, self.o_chan
        tierf = np.array([1.4, 1.0, 0.7])[np.maximum(self.o_tier, 0)]
        lam = np.select(
            [kind == KIND_B2B, chan == POS, chan == DRAFT, kind == KIND_TEST],
            [2.6 * tierf * (1 + 0.3 * self.o_key_ramp), 0.9, 1.5, 0.4], 0.7)
        n_lines = 1 + np.minimum(rng.poisson(lam), np.where(kind == KIND_B2B, 24, 7))
        order, _ = _within(n_lines)
        month = self.o_month[order]
        cold = self.loc.cold[np.where(self.o_ship >= 0, self.o_ship, self.o_bill)][order]
        group = np.where(kind[order] == KIND_B2B, GROUP_B2B, np.where(cold, GROUP_DTC_COLD, GROUP_DTC_WARM))
        variant = sample_variants(rng, cat, group, month)
        del cold, group  # (line-length temporaries go as soon as they are used: 10M orders hold ~20M lines here)
        # B2B accounts reorder their usual consumables and safety items
        b2b = kind[order] == KIND_B2B
        if self.n_companies:
            first_month = self.cal.month_of(self.c_first)
            fav = sample_variants(rng, cat, np.full(self.n_companies * 10, GROUP_B2B),
                                  np.repeat(first_month, 10)).reshape(self.n_companies, 10)
            fav_w = np.array([0.2, 0.17, 0.14, 0.12, 0.1, 0.08, 0.07, 0.05, 0.04, 0.03])
            j = _pick(rng, len(order), fav_w)
            cand = fav[np.maximum(self.o_comp[order], 0), j]
            p = cat.v_product[cand]
            avail = (cat.launch_month[p] <= month) & (month < cat.disc_month[p])
            use = b2b & avail & (rng.random(len(order)) < 0.65 * cat.fade[month, p])
            variant = np.where(use, cand, variant)
            del fav, j, cand, p, avail, use
        # one line per variant within an order
        key = order * cat.n_variants + variant
        _, first_idx = np.unique(key, return_index=True)
        keep = np.sort(first_idx)
        del key, first_idx
        order, variant, month = order[keep], variant[keep], month[keep]
        b2b = b2b[keep]
        product = cat.v_product[variant]
        ptype = cat.ptype[product]
        types = V.PRODUCT_TYPES
        # quantities
        p_dtc = np.array([{"Consumables": 0.45, "Work Apparel": 0.8, "Accessories": 0.75, "Safety Gear": 0.6,
                           "Hand Tools": 0.85}.get(t["name"], 0.93) for t in types])
        q_dtc = np.minimum(rng.geometric(p_dtc[ptype]), 20)
        b2b_base = np.array([{"Consumables": 12.0, "Safety Gear": 8.0, "Work Apparel": 6.0, "Outerwear": 4.0,
                              "Footwear": 3.0}.get(t["name"], 2.0) for t in types])
        tq = np.array([2.2, 1.0, 0.5])[np.maximum(self.o_tier[order], 0)] * (1 + 1.3 * self.o_key_ramp[order])
        noise = np.clip(rng.normal(0, 0.6, len(order)), -1.5, 1.2)  # no freak lines of a thousand units
        q_b2b = np.maximum(1, np.round(np.exp(np.log(b2b_base[ptype] * tq) + noise)))
        qty = np.where(b2b, q_b2b, q_dtc).astype(np.int64)
        # prices: every line is priced at list; B2B lines get the company's price list and, from
        # 10 / 50 / 100 units, a volume break off the contract price (booked as a line discount);
        # clearance markdowns for DTC
        price = cat.v_price[variant]
        pl_pct = np.where(b2b, PRICE_LIST_PCT[self.c_price_list[np.maximum(self.o_comp[order], 0)]], 0)
        contract = (price * (100 - pl_pct) + 50) // 100
        vb = np.where(b2b, np.searchsorted(VOLUME_BREAK_MIN, qty, side="right") - 1, -1)
        final = np.where(vb >= 0, (contract * (100 - VOLUME_BREAK_PCT[np.maximum(vb, 0)]) + 50) // 100, contract)
        self.l_contract_price = np.where(b2b, final, price)
        self.l_contract_disc = np.where(b2b, (price - final) * qty, 0)
        self.l_break_disc = np.where(b2b, (contract - final) * qty, 0)
        self.l_break = vb
        markdown = cat.markdown[month, product] & ~b2b
        self.l_order, self.l_variant, self.l_product, self.l_type = order, variant, product, ptype
        self.l_qty, self.l_price, self.l_markdown = qty, price, markdown
        self.l_b2b = b2b
        self.n_lines = len(order)
        self.o_n_lines = np.bincount(order, minlength=n)
        self.o_first_line = np.cumsum(self.o_n_lines) - self.o_n_lines
        t_line = self.o_t[order]
        renamed = (cat.renamed_at[product] >= 0) & (t_line < cat.renamed_at[product])
        self.l_title_idx = np.where(renamed, cat.n_products + product, product)
        sku_changed = (cat.v_sku_changed_at[variant] >= 0) & (t_line < cat.v_sku_changed_at[variant])
        self.l_sku_idx = np.where(sku_changed, cat.n_variants + variant, variant)

    # ---- money ------------------------------------------------------------------------------
    def _money(self, rng: np.random.Generator) -> None:
        n, cal, loc = self.n_orders, self.cal, self.loc
        lo = self.l_order
        gross = self.l_price * self.l_qty
        line_disc = np.where(self.l_markdown, _pct_of(gross, 30), 0) + self.l_contract_disc
        base = gross - line_disc
        o_base = _sum_by(lo, base, n)
        # discount codes (DTC only)
        day = cal.day_of(self.o_t)
        dtc = (self.o_kind == KIND_DTC) & (self.o_chan != POS)
        u = rng.random(n)
        code = np.full(n, NO_CODE)
        c = {name: i for i, name in enumerate(CODES)}
        code = np.where(dtc & cal.bfcm_days[day] & (u < 0.5), c["BFCM25"], code)
        code = np.where(dtc & (code == NO_CODE) & cal.spring_days[day] & (u < 0.28), c["SPRING10"], code)
        code = np.where(dtc & (code == NO_CODE) & cal.summer_days[day] & (u < 0.33), c["SUMMER15"], code)
        u2 = rng.random(n)
        code = np.where(dtc & (code == NO_CODE) & self.o_first & (u2 < 0.14), c["WELCOME10"], code)
        code = np.where(dtc & (code == NO_CODE) & (self.o_seg == 3) & (u2 < 0.12), c["VIP20"], code)
        code = np.where(dtc & (code == NO_CODE) & (o_base >= 15000) & (u2 > 0.96), c["SAVE20"], code)
        self.o_code = code
        pct = CODE_PCT[code][lo]
        alloc = _pct_of(base, pct)
        fixed = CODE_FIXED[code]
        has_fixed = fixed[lo] > 0
        share = np.where(has_fixed, base * fixed[lo] // np.maximum(o_base[lo], 1), 0)
        alloc = np.where(has_fixed, share, alloc)
        remainder = np.where(fixed > 0, fixed - _sum_by(lo, share, n), 0)
        alloc[self.o_first_line] += remainder
        net = base - alloc
        # taxes: by destination (store for POS); B2B exemptions; exports untaxed
        tax_loc = np.where(self.o_ship >= 0, self.o_ship, loc.store)
        bp = np.where(self.o_tax_exempt, 0, loc.tax_bp[tax_loc])
        tax = _bp_of(net, bp[lo])
        self.l_gross, self.l_line_disc, self.l_alloc, self.l_net, self.l_tax = gross, line_disc, alloc, net, tax
        self.l_cost = self.cat.v_cost[self.l_variant] * self.l_qty
        self.o_gross = _sum_by(lo, gross, n)
        self.o_discounts = _sum_by(lo, line_disc + alloc, n)
        self.o_subtotal = _sum_by(lo, net, n)
        self.o_taxes = _sum_by(lo, tax, n)
        self.o_items = _sum_by(lo, self.l_qty, n)
        self.o_tax_bp = bp
        # shipping
        us = loc.us[np.maximum(self.o_ship, 0)]
        exped = rng.random(n) < 0.12
        sub = self.o_subtotal
        tier = self.o_tier
        b2b = self.o_kind == KIND_B2B
        freight = np.maximum(np.where(us, 2500, 7500), _pct_of(sub, np.where(us, 3, 6)))
        freight = np.where((tier == 0) | ((tier == 1) & (sub >= 250000)), 0, freight)
        ship = np.select(
            [self.o_chan == POS, b2b, self.o_chan == DRAFT, ~us, exped, sub >= 9900],
            [0, freight, 995, np.where(sub >= 20000, 0, 2495), 1495, 0], 795)
        method = np.select(
            [self.o_chan == POS, b2b, self.o_chan == DRAFT, ~us, exped, sub >= 9900],
            [4, 5, 6, 3, 1, 2], 0)
        self.o_shipping, self.o_ship_method = ship.astype(np.int64), method
        self.o_total = self.o_subtotal + self.o_shipping + self.o_taxes

    # ---- fulfilment, cancellation -------------------------------------------------------------
    def _fulfil_and_cancel(self, rng: np.random.Generator) -> None:
        n = self.n_orders
        b2b = self.o_kind == KIND_B2B
        delay = np.where(b2b, rng.uniform(1.0, 6.0, n), rng.uniform(0.3, 3.0, n))
        delay = np.where(self.o_chan == POS, 0.0, delay)
        fulfilled = self.o_t + (delay * DAY_US).astype(np.int64)
        p_cancel = np.where(b2b, 0.01, np.where(self.o_chan == POS, 0.002, 0.015))
        cancel = (rng.random(n) < p_cancel) & ~self.o_is_test
        cdelay = np.where(self.o_chan == POS, rng.uniform(60, 1800, n) * US,
                          rng.uniform(0.02, 0.9, n) * np.maximum(delay, 0.1) * DAY_US).astype(np.int64)
        cancelled_at = np.where(cancel, self.o_t + cdelay, -1)
        cancelled_at = np.where(cancelled_at > self.as_of, -1, cancelled_at)
        self.o_cancelled_at = cancelled_at
        self.o_cancel_reason = np.where(cancelled_at >= 0, _pick(rng, n, [0.55, 0.1, 0.2, 0.05, 0.1]), -1)
        fulfilled = np.where((cancelled_at >= 0) | (fulfilled > self.as_of), -1, fulfilled)
        self.o_fulfilled_at = fulfilled
        self._payments(rng, cancelled_at >= 0)

    def _payments(self, rng: np.random.Generator, cancelled: np.ndarray) -> None:
        """Invoices of orders on Net 30 / Net 60 terms: due date, payment date (or still open).

        Each company pays promptly (around the due date), slowly (weeks late) or badly (months
        late, some invoices disputed); accounts that churned often leave their last invoices unpaid.
        Other orders are paid when placed, except voided ones (cancelled before payment).
        """
        n, m = self.n_orders, self.n_companies
        comp = np.maximum(self.o_comp, 0)
        self.o_terms = np.where(self.o_comp >= 0, self.c_terms[comp], -1)
        terms = np.where(self.o_terms >= 0, TERMS_DAYS[np.maximum(self.o_terms, 0)], 0)
        invoiced = terms > 0
        due = np.where(invoiced, self.o_t + terms * DAY_US, -1)
        payer = _pick(rng, m, [0.55, 0.30, 0.15])[comp]  # prompt, slow, delinquent
        late = np.select([payer == 0, payer == 1], [rng.normal(-3.0, 3.0, n), rng.gamma(2.0, 9.0, n)],
                         rng.gamma(1.5, 30.0, n))
        late = late + np.where((payer == 2) & (rng.random(n) < 0.25), rng.uniform(60.0, 200.0, n), 0.0)
        paid = np.maximum(due + (late * DAY_US).astype(np.int64), self.o_t + DAY_US)
        # the last two invoices of churned accounts stay unpaid 40% of the time
        b2b = np.flatnonzero(self.o_comp >= 0)
        by_comp = b2b[np.lexsort((self.o_t[b2b], self.o_comp[b2b]))]
        count = np.bincount(self.o_comp[b2b], minlength=m)
        _, pos = _within(count)
        from_end = np.full(n, 1 << 30)
        from_end[by_comp] = count[self.o_comp[by_comp]] - 1 - pos
        churned = (self.c_lapse[comp] > 0) & (self.c_lapse[comp] < self.as_of - 180 * DAY_US)
        written_off = invoiced & churned & (from_end < 2) & (rng.random(n) < 0.4)
        unpaid = invoiced & (cancelled | written_off | (paid > self.as_of))
        voided_now = cancelled & (self.o_chan == POS)  # card never captured
        self.o_due = due
        self.o_unpaid = unpaid
        self.o_paid_at = np.where(invoiced, np.where(unpaid, -1, paid), np.where(voided_now, -1, self.o_t))
        as_of_day = int(self.cal.day_of(np.array([self.as_of]))[0])
        due_day = self.cal.day_of(np.maximum(due, self.start_us))
        past_due = np.maximum(as_of_day - due_day, 0)
        status = np.select([~invoiced, cancelled, ~unpaid, past_due > 0], [-1, 3, 0, 2], 1)
        self.o_invoice_status = status
        self.o_days_past_due = np.where((status == 1) | (status == 2), past_due, -1)

    # ---- refunds ------------------------------------------------------------------------------
    def _returns(self, rng: np.random.Generator) -> None:
        n, L = self.n_orders, self.n_lines
        lo = self.l_order
        types = V.PRODUCT_TYPES
        ret_dtc = np.array([t["ret_dtc"] for t in types])
        ret_b2b = np.array([t["ret_b2b"] for t in types])
        p = np.where(self.l_b2b, ret_b2b[self.l_type], ret_dtc[self.l_type])
        p = np.where(self.o_chan[lo] == POS, p * 0.6, p)
        eligible = (self.o_fulfilled_at[lo] >= 0) & ~self.o_is_test[lo]
        ret = eligible & (rng.random(L) < p)
        q = self.l_qty
        part = 1 + (rng.random(L) * np.maximum(q - 1, 1)).astype(np.int64)
        rq = np.where((q == 1) | (rng.random(L) < 0.65), q, np.minimum(part, q))
        # one refund per order, some days after delivery
        wait = (rng.uniform(1.5, 5.0, n) + np.exp(rng.normal(np.log(8.0), 0.6, n))) * DAY_US
        r_t = self.o_fulfilled_at + wait.astype(np.int64)
        ret &= r_t[lo] <= self.as_of
        # reasons by product family
        apparel = np.isin(self.l_type, [TYPE_NAMES.index(x) for x in ("Work Apparel", "Outerwear", "Footwear")])
        tools = np.isin(self.l_type, [TYPE_NAMES.index(x) for x in ("Power Tools", "Batteries & Chargers", "Hand Tools")])
        reason = np.select(
            [apparel, tools],
            [_pick(rng, L, [0.35, 0.3, 0.15, 0.1, 0.05, 0.05, 0, 0]),
             _pick(rng, L, [0, 0, 0, 0.3, 0.4, 0.2, 0.1, 0])],
            _pick(rng, L, [0, 0, 0, 0.45, 0.2, 0, 0.2, 0.15]))
        restock = np.where(np.isin(reason, [4, 7]), 1, 0)  # defective, damaged: not restocked
        # cancellations: everything, on the cancellation date
        cancelled = self.o_cancelled_at >= 0
        ret_lines = np.flatnonzero(ret & ~cancelled[lo])
        can_lines = np.flatnonzero(cancelled[lo])
        rl_line = np.concatenate([ret_lines, can_lines])
        rl_qty = np.concatenate([rq[ret_lines], q[can_lines]])
        rl_restock = np.concatenate([restock[ret_lines], np.full(len(can_lines), 2)])
        rl_reason_label = np.concatenate([reason[ret_lines], np.full(len(can_lines), -1)])
        rl_order = lo[rl_line]
        rl_t = np.where(cancelled[rl_order], self.o_cancelled_at[rl_order], r_t[rl_order])
        # refunds: one per order with refunded lines
        r_orders = np.unique(rl_order)
        refund_t = np.where(cancelled[r_orders], self.o_cancelled_at[r_orders], r_t[r_orders])
        order_r = np.lexsort((r_orders, refund_t))
        r_orders, refund_t = r_orders[order_r], refund_t[order_r]
        nr = len(r_orders)
        refund_of_order = np.full(n, -1)
        refund_of_order[r_orders] = np.arange(nr)
        rl_refund = refund_of_order[rl_order]
        srt = np.lexsort((rl_line, rl_refund))
        rl_line, rl_qty, rl_restock, rl_reason_label, rl_order, rl_t, rl_refund = (
            a[srt] for a in (rl_line, rl_qty, rl_restock, rl_reason_label, rl_order, rl_t, rl_refund))
        full = rl_qty == q[rl_line]
        rl_sub = np.where(full, self.l_net[rl_line], (self.l_net[rl_line] * rl_qty + q[rl_line] // 2) // q[rl_line])
        rl_tax = np.where(full, self.l_tax[rl_line], (self.l_tax[rl_line] * rl_qty + q[rl_line] // 2) // q[rl_line])
        rl_cost = np.where(rl_restock != 1, self.cat.v_cost[self.l_variant[rl_line]] * rl_qty, 0)
        # refunded shipping: cancellations, and complete returns for a fault of ours
        r_units = _sum_by(rl_refund, rl_qty, nr)
        fault = _sum_by(rl_refund, np.isin(rl_reason_label, [4, 5, 6, 7]).astype(np.int64), nr) > 0
        whole = r_units == self.o_items[r_orders]
        r_cancel = cancelled[r_orders]
        r_ship = np.where(r_cancel | (whole & fault), self.o_shipping[r_orders], 0)
        self.r_order, self.r_t, self.r_cancel, self.r_ship = r_orders, refund_t, r_cancel, r_ship
        self.r_sub = _sum_by(rl_refund, rl_sub, nr)
        self.r_tax = _sum_by(rl_refund, rl_tax, nr)
        self.r_units = r_units
        self.r_lines = np.bincount(rl_refund, minlength=nr)
        self.r_restock = _sum_by(rl_refund, (rl_restock != 1).astype(np.int64), nr) > 0
        first_reason = np.full(nr, -1)
        first_reason[rl_refund[::-1]] = rl_reason_label[::-1]
        self.r_reason = first_reason
        self.rl_line, self.rl_qty, self.rl_restock, self.rl_reason = rl_line, rl_qty, rl_restock, rl_reason_label
        self.rl_order, self.rl_refund, self.rl_sub, self.rl_tax, self.rl_cost = (
            rl_order, rl_refund, rl_sub, rl_tax, rl_cost)
        refunded = np.zeros(n, dtype=np.int64)
        np.add.at(refunded, r_orders, self.r_sub + self.r_tax + r_ship)
        self.o_refunded = refunded

    def _statuses(self) -> None:
        cancelled = self.o_cancelled_at >= 0
        pending = self.o_unpaid
        status = np.where(pending, 1, 0)
        status = np.where(self.o_refunded > 0, 2, status)
        status = np.where((self.o_refunded == self.o_total) & (self.o_total > 0), 3, status)
        status = np.where(cancelled & (pending | (self.o_chan == POS)), 4, status)
        self.o_fin = status
        self.o_ful = np.where(self.o_fulfilled_at >= 0, 0, 1)

    # ---- sessions ------------------------------------------------------------------------------
    def _sessions(self, rng: np.random.Generator) -> None:
        """Online-store sessions: one converting session per online order, plus the sessions that
        did not convert (about 31 per order) and bots. Built for tens of millions of rows: sorted
        sampling, lookup-table draws, compact dtypes, and a single merge by start time."""
        cal, cat = self.cal, self.cat
        conv_orders = np.flatnonzero((self.o_chan == ONLINE) & ~self.o_is_test)
        nc = len(conv_orders)
        # the default rate written as a division, as it always was: the same float, the same count
        n_human = int(round(nc / HUMAN_CONVERSION if self.sessions_per_order is None
                            else nc * self.sessions_per_order))
        nn = max(n_human - nc, 0)
        nb = int(round(0.08 * n_human))
        src = V.TRAFFIC_SOURCES
        src_labels = sorted({s[0] for s in src})
        chan_labels = sorted({s[1] for s in src})
        src_code = np.array([src_labels.index(s[0]) for s in src], dtype=np.int8)
        chan_code = np.array([chan_labels.index(s[1]) for s in src], dtype=np.int8)
        ai_entries = np.array([i for i, s in enumerate(src) if s[1] == "AI assistant"], dtype=np.int16)
        organic = np.array([s[1] == "Organic search" for s in src])
        email_entry = [s[0] for s in src].index("email")
        # landing pages
        colls = sorted(set(cat.collection))
        paths = ["/", "/search"]
        ptypes = ["Homepage", "Search"]
        paths += [f"/collections/{c.lower().replace(' & ', '-').replace(' ', '-')}" for c in colls]
        ptypes += ["Collection"] * len(colls)
        paths += [f"/products/{h}" for h in cat.handle]
        ptypes += ["Product"] * cat.n_products
        paths += [f"/blogs/job-site/{b}" for b in V.BLOG_POSTS]
        ptypes += ["Blog"] * len(V.BLOG_POSTS)
        paths += list(V.OTHER_PAGES)
        ptypes += ["Other"] * len(V.OTHER_PAGES)
        portal_off = len(paths)
        paths += list(PORTAL_PAGES)
        ptypes += ["Other"] * len(PORTAL_PAGES)
        paths, path_map = _unique_labels(paths)
        type_labels = sorted(set(ptypes))
        page_type = np.array([type_labels.index(x) for x in ptypes], dtype=np.int8)
        p_off = 2 + len(colls)
        b_off = p_off + cat.n_products
        o_off = b_off + len(V.BLOG_POSTS)
        prod_pop = np.bincount(cat.v_product, weights=cat.weights[GROUP_DTC_WARM].sum(axis=0),
                               minlength=cat.n_products) + 1e-9

        def landing(k: int, mix: list[float]) -> np.ndarray:
            kind = _pick(rng, k, mix, compact=True)  # home, search, collection, product, blog, other
            out = np.zeros(k, dtype=np.int16)
            out[kind == 1] = 1
            for j, (offset, size, weights) in enumerate(
                ((2, len(colls), None), (p_off, cat.n_products, prod_pop),
                 (b_off, len(V.BLOG_POSTS), None), (o_off, len(V.OTHER_PAGES), None)), start=2):
                idx = np.flatnonzero(kind == j)
                draw = _pick(rng, len(idx), weights, compact=True) if weights is not None else \
                    rng.integers(0, size, len(idx))
                out[idx] = offset + draw
            return out

        def sources(t: np.ndarray, col: int) -> np.ndarray:
            k = len(t)
            entry = _pick(rng, k, [s[col] for s in src], compact=True)
            idx = np.flatnonzero(organic[entry])
            frac = (t[idx] - self.start_us) / max(self.as_of - self.start_us, 1)
            idx = idx[rng.random(len(idx)) < 0.02 + 0.12 * frac]
            entry[idx] = ai_entries[_pick(rng, len(idx), [0.75, 0.25])]
            return entry

        # converting sessions, ordered by their start
        ot = self.o_t[conv_orders]
        c_dur = np.clip(np.exp(rng.normal(np.log(540), 0.6, nc)), 60, 7200).astype(np.int64)
        c_start = ot - c_dur * US
        ca = np.argsort(c_start, kind="stable")
        conv_orders, ot, c_dur, c_start = conv_orders[ca], ot[ca], c_dur[ca], c_start[ca]
        recovered = rng.random(nc) < 0.04
        c_entry = sources(ot, 3)
        c_entry[recovered] = email_entry
        # sessions that did not convert (sorted by start), and bots
        traffic = cal.warp(cal.daily_online ** 0.75, HOURLY_ONLINE ** 0.8, growth_rate=np.log(1.4))
        n_t = traffic.sample_sorted(rng, nn)
        flat = cal.warp(np.ones(cal.n_days), np.ones(24), growth_rate=np.log(1.3))
        b_t = flat.sample_sorted(rng, nb)
        # B2B portal sessions (their own random stream, so the online store's draws stay as they were)
        pt = self._portal_sessions(self.rng[15], p_off, portal_off,
                                   np.bincount(cat.v_product, weights=cat.weights[GROUP_B2B].sum(axis=0),
                                               minlength=cat.n_products) + 1e-9)
        npt = len(pt["start"])
        nw = len(pt["orders"])
        N = nc + nn + nb + npt
        # the rows of the five sorted runs (converting, not converting, bots, portal orders, portal
        # visits) in the stable sort of them all by start, found by binary search: no full-length
        # concatenation and argsort
        pos_c, pos_n, pos_b, pos_pw, pos_pv = merge_positions(
            [c_start, n_t, b_t, pt["start"][:nw], pt["start"][nw:]])
        pos_p = np.concatenate([pos_pw, pos_pv])
        del pos_pw, pos_pv
        # finished columns go to the scratch folder (read back a row group at a time by the writer)
        spilled = self.sessions = ScratchColumns(self.scratch)

        def merged(dtype: Any, conv: Any, non: Any, bot: Any, portal: Any) -> np.ndarray:
            out = np.empty(N, dtype=dtype)
            out[pos_c] = conv
            out[pos_n] = non
            out[pos_b] = bot
            out[pos_p] = portal
            return out

        def spill(name: str, dtype: Any, conv: Any, non: Any, bot: Any, portal: Any) -> None:
            spilled.put(name, merged(dtype, conv, non, bot, portal))

        spill("started", np.int64, c_start, n_t, b_t, pt["start"])
        n_entry = sources(n_t, 2)
        entry = merged(np.int16, c_entry, n_entry, 0, pt["entry"])
        del n_entry
        source = src_code[entry]
        spilled.put("source", source)
        conv_source, portal_source = source[pos_c], source[pos_p[:nw]]
        del source
        channel = chan_code[entry]
        spilled.put("channel", channel)
        conv_channel, portal_channel = channel[pos_c], channel[pos_p[:nw]]
        del channel, entry
        spill("device", np.int8, _pick(rng, nc, [0.48, 0.47, 0.05]),
              _pick(rng, nn, [0.64, 0.31, 0.05], compact=True),
              _pick(rng, nb, [0.15, 0.85, 0.0], compact=True), pt["device"])
        spill("loc", np.int16, self.o_bill[conv_orders], _pick(rng, nn, self.loc.weight, compact=True),
              _pick(rng, nb, self.loc.weight, compact=True), pt["loc"])
        page = merged(np.int16, landing(nc, [0.3, 0.03, 0.18, 0.45, 0.02, 0.02]),
                      landing(nn, [0.33, 0.03, 0.17, 0.35, 0.07, 0.05]),
                      landing(nb, [0.5, 0.0, 0.1, 0.3, 0.0, 0.1]), pt["page"])
        spilled.put("page", path_map[page].astype(np.int16))
        spilled.put("page_type", page_type[page])
        del page
        # engagement and funnel of the sessions that did not convert
        engaged = np.flatnonzero(rng.random(nn, dtype=np.float32) >= 0.47)  # the rest bounce
        ne = len(engaged)
        n_pv = np.ones(nn, dtype=np.int16)
        n_pv[engaged] = np.minimum(1 + rng.geometric(0.28, ne), 200)
        n_dur = np.zeros(nn, dtype=np.int32)
        n_dur[engaged] = n_pv[engaged] * np.exp(rng.normal(np.log(35), 0.5, ne))
        cart = np.zeros(nn, dtype=bool)
        cart[engaged] = rng.random(ne, dtype=np.float32) < 0.14
        carts = np.flatnonzero(cart)
        reached = np.zeros(nn, dtype=bool)
        reached[carts[rng.random(len(carts)) < 0.36]] = True
        spill("pageviews", np.int16, np.minimum(3 + rng.poisson(7, nc), 200), n_pv, 1, pt["pageviews"])
        spill("duration", np.int32, c_dur, n_dur, 0, pt["duration"])
        del n_pv, n_dur
        spill("bot", bool, False, False, True, False)
        spill("cart", bool, True, cart, False, pt["cart"])
        spill("reached", bool, True, reached, False, pt["reached"])
        spill("completed", bool, True, False, False, pt["completed"])
        spill("portal", bool, False, False, False, True)
        # some sessions that did not convert belong to customers who had ordered before
        dtc_orders = np.flatnonzero(self.o_kind == KIND_DTC)
        n_cust = np.full(nn, -1, dtype=np.int64)
        known = np.flatnonzero(rng.random(nn, dtype=np.float32) < 0.22)
        if len(dtc_orders) and len(known):
            before = np.searchsorted(self.o_t[dtc_orders], n_t[known])
            ok = before > 0
            known, before = known[ok], before[ok]
            pick = (rng.random(len(known)) * before).astype(np.int64)
            n_cust[known] = self.o_cust[dtc_orders[pick]]
        del n_t
        visitors_pool = max(1, int(nn / 1.5))
        n_vis = np.where(n_cust >= 0, 10_000_000_000 + n_cust,
                         20_000_000_000 + rng.integers(0, visitors_pool, nn))
        spill("cust", np.int64, self.o_cust[conv_orders], n_cust, -1, pt["cust"])
        spill("visitor", np.int64, 10_000_000_000 + self.o_cust[conv_orders], n_vis,
              30_000_000_000 + np.arange(nb), 10_000_000_000 + pt["cust"])
        del n_cust, n_vis
        spill("order", np.int64, conv_orders, -1, -1, pt["order"])
        self.src_labels, self.chan_labels = src_labels, chan_labels
        self.paths, self.type_labels = paths, type_labels
        self.recovered = recovered
        self.conv_orders = conv_orders
        # (the merge's rows may be int32; what is kept is int64, as it always was)
        self.s_conv_pos = pos_c.astype(np.int64)
        self.s_nonconv_reached_pos = pos_n[reached].astype(np.int64)
        self.n_sessions = N
        o_src = np.full(self.n_orders, -1, dtype=np.int64)
        o_src[conv_orders] = conv_source
        o_chn = np.full(self.n_orders, -1, dtype=np.int64)
        o_chn[conv_orders] = conv_channel
        self.portal_orders, self.portal_recovered = pt["orders"], pt["recovered"]
        self.s_portal_conv_pos = pos_p[:nw].astype(np.int64)
        self.s_portal_reached_pos = pos_p[nw:][pt["reached"][nw:]].astype(np.int64)
        o_src[pt["orders"]] = portal_source
        o_chn[pt["orders"]] = portal_channel
        self.o_src, self.o_chn = o_src, o_chn

    def _keep_checkout_sessions(self) -> None:
        """Keep only what checkouts read of the sessions (start, duration, customer, device and
        location of the sessions with a checkout), read back from the scratch columns: only the
        sessions writer reads those from here on."""
        with_checkout = np.unique(np.concatenate([self.s_conv_pos, self.s_nonconv_reached_pos,
                                                  self.s_portal_conv_pos, self.s_portal_reached_pos]))
        for name in ("started", "duration", "cust", "device", "loc"):
            setattr(self, f"s_{name}", _SomeRows(with_checkout, self.sessions.take(name, with_checkout)))

    def table_written(self, table: str) -> None:
        """Called (from the writer's thread) once a table's file is complete."""
        if table == "sessions":
            self.sessions.clear()  # its scratch columns

    def _portal_sessions(self, rng: np.random.Generator, product_page_offset: int, portal_page_offset: int,
                         product_weights: np.ndarray) -> dict[str, np.ndarray]:
        """B2B portal sessions, sorted by start: one per Wholesale order (the buyer logs in and
        checks out), and visits around each B2B order that do not order (catalogue, order status,
        reorders left in the cart: these reach checkout and become abandoned Wholesale checkouts).

        Portal traffic is direct (bookmarked portal, logged-in buyers) or from email (order and
        abandoned-checkout emails); it lands on account, quick-order and product pages."""
        entries = [s[0] for s in V.TRAFFIC_SOURCES]
        direct, email = entries.index("direct"), entries.index("email")
        w_orders = np.flatnonzero((self.o_chan == WHOLESALE) & ~self.o_is_test)
        nw = len(w_orders)
        w_dur = np.clip(np.exp(rng.normal(np.log(600), 0.5, nw)), 90, 5400).astype(np.int64)
        w_start = np.maximum(self.o_t[w_orders] - w_dur * US, self.start_us)
        recovered = rng.random(nw) < 0.10
        # visits that do not order, by a buyer of the company, around its B2B orders
        b2b = np.flatnonzero(self.o_kind == KIND_B2B)
        src = np.repeat(b2b, rng.poisson(2.2, len(b2b)))
        comp = self.o_comp[src]
        ncon = self.c_n_contacts[comp]
        pick = np.where(rng.random(len(src)) < 0.55, 0, (rng.random(len(src)) * ncon).astype(np.int64))
        contact = self.c_contact_start[comp] + pick
        t = self.o_t[src] + (rng.uniform(-12.0, 4.0, len(src)) * DAY_US).astype(np.int64)
        t = self.cal.retime(rng, np.clip(t, self.start_us, self.as_of - 1), HOURLY_B2B, business_only=True)
        ok = (t >= self.k_created[contact]) & (t >= self.start_us) & (t < self.as_of)
        t, contact = t[ok], contact[ok]
        srt = np.argsort(t, kind="stable")
        t, contact = t[srt], contact[srt]
        nv = len(t)
        bounce = rng.random(nv) < 0.12
        v_pv = np.where(bounce, 1, np.minimum(2 + rng.geometric(0.2, nv), 200))
        v_dur = np.where(bounce, 0, v_pv * np.exp(rng.normal(np.log(40), 0.5, nv))).astype(np.int64)
        v_cart = ~bounce & (rng.random(nv) < 0.45)
        v_reached = v_cart & (rng.random(nv) < 0.5)
        v_end = t + v_dur * US
        v_dur = np.where(v_end > self.as_of, (self.as_of - t) // US, v_dur)
        # both groups, each sorted by start (the caller merges them with the other sessions)
        ordered = np.argsort(w_start, kind="stable")
        w_orders, w_start, w_dur, recovered = w_orders[ordered], w_start[ordered], w_dur[ordered], recovered[ordered]
        cust = np.concatenate([self.o_cust[w_orders], self.cu_off_contact + contact])
        n = nw + nv
        entry = np.where(rng.random(n) < 0.15, email, direct)
        entry[:nw] = np.where(recovered, email, direct)
        kind = _pick(rng, n, [0.45, 0.25, 0.15, 0.05, 0.10])  # login, orders, quick order, wholesale, product
        page = np.where(kind < 4, portal_page_offset + np.minimum(kind, len(PORTAL_PAGES) - 1),
                        product_page_offset + _pick(rng, n, product_weights))
        start = np.concatenate([w_start, t])
        return {
            "start": start, "orders": w_orders, "recovered": recovered,
            "entry": entry.astype(np.int16), "device": _pick(rng, n, [0.14, 0.82, 0.04]).astype(np.int8),
            "loc": self.cu_loc[cust].astype(np.int16), "page": page.astype(np.int16),
            "pageviews": np.concatenate([np.minimum(5 + rng.poisson(9, nw), 200), v_pv]).astype(np.int16),
            "duration": np.concatenate([w_dur, v_dur]).astype(np.int32),
            "cart": np.concatenate([np.ones(nw, dtype=bool), v_cart]),
            "reached": np.concatenate([np.ones(nw, dtype=bool), v_reached]),
            "completed": np.concatenate([np.ones(nw, dtype=bool), np.zeros(nv, dtype=bool)]),
            "cust": cust, "order": np.concatenate([w_orders, np.full(nv, -1)]),
        }

    def _checkouts(self, rng: np.random.Generator) -> None:
        conv = self.conv_orders
        nc = len(conv)
        ot = self.o_t[conv]
        s_start = self.s_started[self.s_conv_pos]
        created = np.maximum(s_start, ot - rng.uniform(120, 720, nc).astype(np.int64) * US)
        rec = self.recovered
        created = np.where(rec, ot - (rng.uniform(1, 72, nc) * HOUR_US).astype(np.int64), created)
        created = np.maximum(created, self.start_us)
        # abandoned checkouts from non-converting sessions that reached checkout
        ab_pos = self.s_nonconv_reached_pos
        na = len(ab_pos)
        a_start = self.s_started[ab_pos]
        a_created = a_start + (self.s_duration[ab_pos] * rng.uniform(0.5, 1.0, na) * US).astype(np.int64)
        a_created = np.minimum(a_created, self.as_of)
        stage = _pick(rng, na, [0.22, 0.33, 0.27, 0.18])
        a_cust = self.s_cust[ab_pos]
        email = (stage > 0) | (a_cust >= 0)
        sent = email & (a_created + HOUR_US <= self.as_of) & (rng.random(na) < 0.95)
        value = np.round(np.exp(rng.normal(np.log(105), 0.7, na)) * 100).astype(np.int64)
        items = 1 + rng.poisson(0.8, na)
        pc = self._portal_checkouts(self.rng[15])
        t = np.concatenate([created, a_created, pc["created"]])
        order = np.argsort(t, kind="stable")
        self.ck_t = t[order]
        self.ck_completed = np.concatenate([ot, np.full(na, -1), pc["completed"]])[order]
        self.ck_session = np.concatenate([self.s_conv_pos, ab_pos, pc["session"]])[order]
        self.ck_cust = np.concatenate([self.o_cust[conv], a_cust, pc["cust"]])[order]
        self.ck_order = np.concatenate([conv, np.full(na, -1), pc["order"]])[order]
        self.ck_stage = np.concatenate([np.full(nc, 4), stage, pc["stage"]])[order]
        self.ck_abandoned = np.concatenate([rec, np.ones(na, dtype=bool), pc["abandoned"]])[order]
        self.ck_email = np.concatenate([np.ones(nc, dtype=bool), email, np.ones(len(pc["created"]), dtype=bool)])[order]
        self.ck_sent = np.concatenate([rec, sent, pc["sent"]])[order]
        self.ck_recovered = np.concatenate([rec, np.zeros(na, dtype=bool), pc["recovered"]])[order]
        self.ck_value = np.concatenate([self.o_subtotal[conv], value, pc["value"]])[order]
        self.ck_items = np.concatenate([self.o_items[conv], items, pc["items"]])[order]
        self.ck_channel = np.concatenate([np.full(nc + na, ONLINE), np.full(len(pc["created"]), WHOLESALE)])[order]

    def _portal_checkouts(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Wholesale checkouts of the B2B portal: a completed one per Wholesale order (10% of them
        completing a checkout abandoned days earlier, awaiting approval, through the reminder email),
        and an abandoned one per portal visit that reached checkout (most stall at payment: the
        buyer needs a PO or an approval)."""
        w = self.portal_orders
        nw = len(w)
        ot = self.o_t[w]
        rec = self.portal_recovered
        s_start = self.s_started[self.s_portal_conv_pos]
        created = np.maximum(s_start, ot - rng.uniform(120, 900, nw).astype(np.int64) * US)
        created = np.where(rec, ot - (rng.uniform(1.0, 10.0, nw) * DAY_US).astype(np.int64), created)
        created = np.maximum(created, self.start_us)
        ab = self.s_portal_reached_pos
        na = len(ab)
        a_created = self.s_started[ab] + (self.s_duration[ab] * rng.uniform(0.5, 1.0, na) * US).astype(np.int64)
        a_created = np.minimum(a_created, self.as_of)
        stage = _pick(rng, na, [0.15, 0.10, 0.30, 0.45])
        sent = (a_created + HOUR_US <= self.as_of) & (rng.random(na) < 0.7)
        a_cust = self.s_cust[ab]
        a_comp = self.k_company[a_cust - self.cu_off_contact]
        # the cart of an abandoned checkout: like the company's orders
        comp_orders = self.o_comp >= 0
        cnt = np.maximum(np.bincount(self.o_comp[comp_orders], minlength=self.n_companies), 1)
        mean_sub = np.bincount(self.o_comp[comp_orders], weights=self.o_subtotal[comp_orders],
                               minlength=self.n_companies) / cnt
        mean_items = np.bincount(self.o_comp[comp_orders], weights=self.o_items[comp_orders],
                                 minlength=self.n_companies) / cnt
        scale = np.exp(rng.normal(0, 0.5, na))
        value = np.round(mean_sub[a_comp] * scale).astype(np.int64)
        items = np.maximum(1, np.round(mean_items[a_comp] * scale)).astype(np.int64)
        return {
            "created": np.concatenate([created, a_created]),
            "completed": np.concatenate([ot, np.full(na, -1)]),
            "session": np.concatenate([self.s_portal_conv_pos, ab]),
            "cust": np.concatenate([self.o_cust[w], a_cust]),
            "order": np.concatenate([w, np.full(na, -1)]),
            "stage": np.concatenate([np.full(nw, 4), stage]),
            "abandoned": np.concatenate([rec, np.ones(na, dtype=bool)]),
            "sent": np.concatenate([rec, sent]),
            "recovered": np.concatenate([rec, np.zeros(na, dtype=bool)]),
            "value": np.concatenate([self.o_subtotal[w], value]),
            "items": np.concatenate([self.o_items[w], items]),
        }

    # ---- draft orders (quotes) ------------------------------------------------------------------
    def _drafts(self, rng: np.random.Generator) -> None:
        n = self.n_orders
        done = np.flatnonzero((self.o_chan == DRAFT) & ~self.o_is_test)
        nd = len(done)
        b2b = self.o_kind[done] == KIND_B2B
        lead = np.where(b2b, rng.uniform(1, 14, nd) * DAY_US, rng.uniform(5, 60, nd) * 60 * US).astype(np.int64)
        d_created = np.maximum(self.o_t[done] - lead, self.start_us)
        d_sent = np.where(b2b, d_created + ((self.o_t[done] - d_created) * rng.uniform(0.05, 0.6, nd)).astype(np.int64), -1)
        # quotes that were not accepted
        m = self.n_companies
        acc = np.bincount(self.o_comp[done][b2b], minlength=m) if m else np.zeros(0, dtype=np.int64)
        years_active = np.maximum(0, (self.c_stop - self.c_first) / DAY_US / 365.25) if m else np.zeros(0)
        n_un = rng.poisson(0.8 * acc + 0.6 * years_active + 0.3) if m else np.zeros(0, dtype=np.int64)
        comp, _ = _within(n_un)
        lo_t = self.c_first[comp]
        hi_t = np.minimum(np.where(self.c_lapse[comp] > 0, self.c_lapse[comp] + 60 * DAY_US, self.as_of), self.as_of)
        u_t = lo_t + (rng.random(len(comp)) * np.maximum(hi_t - lo_t, 1)).astype(np.int64)
        u_t = self._retime(rng, u_t, HOURLY_B2B, business_only=True)
        u_t = np.minimum(u_t, self.as_of)
        nu = len(comp)
        recent = u_t >= self.as_of - 30 * DAY_US
        u_status = np.where(recent, np.where(rng.random(nu) < 0.35, 0, 1), 3)  # open, invoice_sent, expired
        u_sent = np.where(u_status != 0, u_t + (rng.uniform(0.1, 3, nu) * DAY_US).astype(np.int64), -1)
        u_sent = np.where(u_sent > self.as_of, -1, u_sent)
        u_status = np.where((u_status == 1) & (u_sent < 0), 0, u_status)
        # quote values: like the company's orders
        comp_orders = self.o_comp >= 0
        mean_sub = np.ones(max(m, 1)) * (self.o_subtotal[comp_orders].mean() if comp_orders.any() else 100000)
        if m:
            cnt = np.bincount(self.o_comp[comp_orders], minlength=m)
            tot = np.bincount(self.o_comp[comp_orders], weights=self.o_subtotal[comp_orders], minlength=m)
            mean_sub[:m] = np.where(cnt > 0, tot / np.maximum(cnt, 1), mean_sub[:m])
        u_sub = np.round(mean_sub[comp] * np.exp(rng.normal(0, 0.4, nu))).astype(np.int64) if m else np.zeros(0, np.int64)
        ctax = np.where(self.c_tax_exempt[comp], 0, self.loc.tax_bp[self.c_loc[comp]]) if m else np.zeros(0, np.int64)
        u_tax = _bp_of(u_sub, ctax)
        tier = self.c_tier[comp] if m else np.zeros(0, np.int64)
        u_ship = np.where((tier == 0) | ((tier == 1) & (u_sub >= 250000)), 0, np.maximum(2500, _pct_of(u_sub, 3)))
        u_lines = 1 + rng.poisson(3, nu)
        u_items = u_lines * (1 + rng.poisson(8, nu))
        u_cust = self.cu_off_contact + self.c_contact_start[comp] if m else np.zeros(0, np.int64)
        # together, ordered by creation
        t = np.concatenate([d_created, u_t])
        order = np.argsort(t, kind="stable")
        self.q_t = t[order]
        self.q_status = np.concatenate([np.full(nd, 2), u_status])[order]  # 2 = completed
        self.q_sent = np.concatenate([d_sent, u_sent])[order]
        self.q_completed = np.concatenate([self.o_t[done], np.full(nu, -1)])[order]
        self.q_expires = np.concatenate([np.where(b2b, d_created + 30 * DAY_US, -1), u_t + 30 * DAY_US])[order]
        self.q_order = np.concatenate([done, np.full(nu, -1)])[order]
        self.q_cust = np.concatenate([self.o_cust[done], u_cust])[order]
        self.q_comp = np.concatenate([self.o_comp[done], comp])[order]
        self.q_sub = np.concatenate([self.o_subtotal[done], u_sub])[order]
        self.q_tax = np.concatenate([self.o_taxes[done], u_tax])[order]
        self.q_ship = np.concatenate([self.o_shipping[done], u_ship])[order]
        self.q_lines = np.concatenate([self.o_n_lines[done], u_lines])[order]
        self.q_items = np.concatenate([self.o_items[done], u_items])[order]
        self.q_exempt = np.concatenate([self.o_tax_exempt[done], self.c_tax_exempt[comp] if m else np.zeros(0, bool)])[order]
        self.q_terms = np.concatenate([self.o_terms[done], self.c_terms[comp] if m else np.zeros(0, np.int64)])[order]
        self.q_due = np.concatenate([self.o_due[done], np.full(nu, -1)])[order]
        assert n == self.n_orders

    # ---- customers -------------------------------------------------------------------------------
    def _customer_stats(self) -> None:
        real = ~self.o_is_test
        self.cu_spent = _sum_by(self.o_cust[real], (self.o_total - self.o_refunded)[real], self.n_customers)

    # =========================================================================================
    # tables
    # =========================================================================================
    def _products_table(self) -> dict[str, pa.Array]:
        cat = self.cat
        P = cat.n_products
        first_var = np.searchsorted(cat.v_product, np.arange(P))
        n_var = np.bincount(cat.v_product, minlength=P)
        min_price = np.minimum.reduceat(cat.v_price, first_var)
        max_price = np.maximum.reduceat(cat.v_price, first_var)
        return {
            "product_id": ints(np.arange(1, P + 1)),
            "title": strings(cat.title),
            "handle": strings(cat.handle),
            "product_type": categorical(cat.ptype, TYPE_NAMES),
            "vendor": strings(cat.vendor),
            "collection": strings(cat.collection),
            "status": categorical(np.where(cat.discontinued_at >= 0, 1, 0), ["active", "archived"]),
            "created_at": timestamp(cat.created_at),
            "discontinued_at": timestamp(cat.discontinued_at, null=cat.discontinued_at < 0),
            "variant_count": ints(n_var, type=pa.int32()),
            "min_price": money(min_price),
            "max_price": money(max_price),
            "title_before_rename": strings(cat.old_title),
            "renamed_at": timestamp(cat.renamed_at, null=cat.renamed_at < 0),
        }

    def _variants_table(self) -> dict[str, pa.Array]:
        cat = self.cat
        n = cat.n_variants
        return {
            "variant_id": ints(np.arange(1, n + 1)),
            "product_id": ints(cat.v_product + 1),
            "title": strings(cat.v_title),
            "sku": strings(cat.v_sku),
            "position": ints(cat.v_position, type=pa.int32()),
            "price": money(cat.v_price),
            "compare_at_price": money(np.maximum(cat.v_compare_at, 0), null=cat.v_compare_at < 0),
            "unit_cost": money(cat.v_cost),
            "created_at": timestamp(cat.created_at[cat.v_product]),
            "sku_before_change": strings(cat.v_old_sku),
            "sku_changed_at": timestamp(cat.v_sku_changed_at, null=cat.v_sku_changed_at < 0),
        }

    def _companies_table(self) -> dict[str, pa.Array]:
        m, loc = self.n_companies, self.loc
        main = self.cu_off_contact + self.c_contact_start
        return {
            "company_id": ints(np.arange(1, m + 1)),
            "name": strings(self.c_name),
            "industry": categorical(self.c_industry, INDUSTRIES),
            "tier": categorical(self.c_tier, TIERS),
            "region": categorical(self.c_region, SALES_REGIONS),
            "country": categorical(loc.country[self.c_loc], loc.countries),
            "state": categorical(loc.region[self.c_loc], loc.regions),
            "city": categorical(loc.city[self.c_loc], loc.cities),
            "payment_terms": categorical(self.c_terms, TERMS),
            "sales_rep": strings(self.c_rep),
            "price_list": categorical(self.c_price_list, PRICE_LISTS),
            "price_list_discount_pct": ints(PRICE_LIST_PCT[self.c_price_list], type=pa.int32()),
            "tax_exempt": bools(self.c_tax_exempt),
            "main_contact_customer_id": ints(self.customer_id[main]),
            "created_at": timestamp(self.c_created),
        }

    def _customers_table(self, rng: np.random.Generator) -> dict[str, pa.Array]:
        nc, loc = self.n_customers, self.loc
        n_dtc, n_zero, n_k = len(self.d_seg), len(self.z_created), len(self.k_company)
        first = np.concatenate([self.d_first, self.z_first, self.k_first, [0, 1, 2]])
        last = np.concatenate([self.d_last, self.z_last, self.k_last, [0, 1, 2]])
        fn = np.array(V.FIRST_NAMES, dtype=object)[first]
        ln = np.array(V.LAST_NAMES, dtype=object)[last]
        fn[-3:] = ["Store", "QA", "Ops"]
        ln[-3:] = ["Staff", "Tester", "Admin"]
        kind = np.concatenate([np.zeros(n_dtc + n_zero, dtype=np.int64), np.ones(n_k, dtype=np.int64), [2, 2, 2]])
        comp = np.concatenate([np.full(n_dtc + n_zero, -1), self.k_company, [-1, -1, -1]])
        domain = np.where(kind == 0, rng.integers(0, len(V.EMAIL_DOMAINS), nc), 0)
        company_domain = [n.split(" ")[0].lower() + ".example" for n in self.c_name]
        dom = np.array(V.EMAIL_DOMAINS, dtype=object)[domain]
        if n_k:
            dom[kind == 1] = np.array(company_domain, dtype=object)[self.k_company]
        dom[kind == 2] = "northwindsupply.example"
        frame = pl.DataFrame({"f": fn.astype(str), "l": ln.astype(str), "d": dom.astype(str)})
        frame = frame.with_columns(
            base=(pl.col("f").str.to_lowercase() + "." + pl.col("l").str.to_lowercase()),
        ).with_columns(rank=pl.int_range(pl.len()).over("base", "d"))
        # ids are assigned by creation time, so rank duplicates in that order
        created = self.cu_created
        frame = frame.with_columns(created=pl.Series(created), idx=pl.int_range(pl.len()))
        frame = frame.sort("created", "idx").with_columns(rank=pl.int_range(pl.len()).over("base", "d")).sort("idx")
        email = frame.select(
            pl.when(pl.col("rank") == 0).then(pl.col("base"))
            .otherwise(pl.col("base") + (pl.col("rank") + 1).cast(pl.String)) + "@" + pl.col("d")
        ).to_series().to_numpy()
        # tags
        seg = np.concatenate([self.d_seg, np.full(n_zero + n_k + 3, -1)])
        accepts = np.where(kind == 0, rng.random(nc) < np.where(seg == 3, 0.8, 0.5), rng.random(nc) < 0.35)
        accepts[kind == 2] = False
        vip = (seg == 3) & (rng.random(nc) < 0.9)
        loyalty = np.isin(seg, [2, 3]) & (rng.random(nc) < 0.5)
        # VIP B2B buyers: the primary buyers of key and Enterprise accounts (and some of their
        # colleagues), a few primary buyers of Mid-market accounts
        if n_k:
            k_comp = self.k_company
            p_vip = np.select([self.c_key[k_comp] & self.k_primary, self.k_primary],
                              [1.0, np.array([0.6, 0.15, 0.0])[self.c_tier[k_comp]]],
                              np.array([0.2, 0.0, 0.0])[self.c_tier[k_comp]])
            vip[n_dtc + n_zero:n_dtc + n_zero + n_k] = rng.random(n_k) < p_vip
        local = np.zeros(nc, dtype=bool)
        local[:n_dtc] = self.d_local
        ind = np.where(comp >= 0, self.c_industry[np.maximum(comp, 0)] if self.n_companies else -1, -1)
        exempt = np.where(comp >= 0, self.c_tax_exempt[np.maximum(comp, 0)] if self.n_companies else False, False)
        tag_cols = [
            ("VIP", vip), ("loyalty-member", loyalty), ("newsletter", accepts & (kind == 0)),
            ("local", local), ("wholesale", kind == 1), ("distributor", ind == 1), ("contractor", ind == 0),
            ("oem", ind == 3), ("tax-exempt", exempt), ("staff", kind == 2),
        ]
        flags = np.stack([f for _, f in tag_cols], axis=1)
        counts = flags.sum(axis=1)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        names = np.array([t for t, _ in tag_cols], dtype=object)
        flat = np.broadcast_to(names, flags.shape)[flags]
        # reorder rows by customer id
        order = self.customer_order
        new_offsets = np.concatenate([[0], np.cumsum(counts[order])])
        rows = np.repeat(order, counts[order])
        within = np.arange(new_offsets[-1]) - np.repeat(new_offsets[:-1], counts[order])
        flat_sorted = flat[offsets[rows] + within] if len(rows) else np.zeros(0, dtype=object)
        role = np.concatenate([np.full(n_dtc + n_zero, -1), self.k_role, [-1, -1, -1]])
        cloc = self.cu_loc
        spent = self.cu_spent
        recency = np.where(self.cu_last_order >= 0, (self.as_of - self.cu_last_order) / DAY_US, np.inf)
        freq = self.cu_orders
        rfm = np.select(
            [freq == 0, recency > 365, (freq >= 5) & (recency <= 60), (freq >= 3) & (recency <= 120),
             (freq == 1) & (recency <= 60), (freq == 2) & (recency <= 120), (freq >= 3) & (recency <= 240),
             recency <= 180],
            [0, 8, 2, 3, 1, 4, 6, 5], 7)
        o = order
        return {
            "customer_id": ints(np.arange(1, nc + 1)),
            "email": strings(email[o].tolist()),
            "first_name": strings(fn[o].tolist()),
            "last_name": strings(ln[o].tolist()),
            "name": strings((fn[o] + " " + ln[o]).tolist()),
            "tags": string_lists(new_offsets, flat_sorted.tolist()),
            "country": categorical(loc.country[cloc][o], loc.countries),
            "region": categorical(loc.region[cloc][o], loc.regions),
            "city": categorical(loc.city[cloc][o], loc.cities),
            "accepts_marketing": bools(accepts[o]),
            "created_at": timestamp(created[o]),
            "company_id": ints(comp[o] + 1, null=comp[o] < 0),
            "role": categorical(role[o], V.B2B_ROLES),
            "tax_exempt": bools(exempt[o]),
            "orders_count": ints(freq[o], type=pa.int32()),
            "amount_spent": money(spent[o]),
            "first_order_at": timestamp(self.cu_first_order[o], null=self.cu_first_order[o] < 0),
            "last_order_at": timestamp(self.cu_last_order[o], null=self.cu_last_order[o] < 0),
            "rfm_group": categorical(rfm[o], RFM),
        }

    @property
    def cu_created(self) -> np.ndarray:
        if getattr(self, "_cu_created", None) is None:
            rng = self.rng[14]
            nc = self.n_customers
            first = self.cu_first_order
            n_dtc, n_zero = len(self.d_seg), len(self.z_created)
            early = rng.random(nc) < 0.3
            delta = np.where(early, rng.exponential(45, nc) * DAY_US, rng.uniform(30, 600, nc) * US).astype(np.int64)
            created = np.where(first >= 0, np.maximum(first - delta, self.start_us), -1)
            created = np.where(first >= 0, np.minimum(created, first), created)
            created[n_dtc:n_dtc + n_zero] = self.z_created
            k = slice(n_dtc + n_zero, n_dtc + n_zero + len(self.k_company))
            kc = self.k_created
            kf = first[k]
            created[k] = np.where(kf >= 0, np.minimum(kc, kf - 60 * US), kc)
            created[-3:] = self.start_us
            self._cu_created = created
        return self._cu_created

    @property
    def customer_order(self) -> np.ndarray:
        """Global customer indexes in id order (ids follow creation time)."""
        if getattr(self, "_customer_order", None) is None:
            created = self.cu_created
            self._customer_order = np.lexsort((np.arange(len(created)), created))
            ids = np.empty(len(created), dtype=np.int64)
            ids[self._customer_order] = np.arange(1, len(created) + 1)
            self._customer_id = ids
        return self._customer_order

    @property
    def customer_id(self) -> np.ndarray:
        _ = self.customer_order  # computes the ids
        return self._customer_id

    def _orders_table(self) -> ChunkedTable:
        """The orders; the writer converts them to Arrow a row group at a time (a whole Arrow copy of
        3M orders is ~1 GB)."""
        loc = self.loc
        n_codes = np.concatenate([[0], np.cumsum(self.o_code != NO_CODE)])
        currency_labels = sorted(set(loc.currency))
        currency_of_location = np.array([currency_labels.index(c) for c in loc.currency])
        src_labels, chan_labels = self.src_labels, self.chan_labels

        def rows(first: int, stop: int) -> dict[str, pa.Array]:
            r = slice(first, stop)

            def part(name: str) -> np.ndarray:
                return self._rows_of(name, r)

            n = stop - first
            oid = np.arange(first + 1, stop + 1)
            names = ("#" + pl.Series(1000 + oid).cast(pl.String)).to_arrow()
            code = part("o_code")
            code_offsets = n_codes[first:stop + 1] - n_codes[first]
            code_values = [CODES[c] for c in code[code != NO_CODE]]
            ship = part("o_ship")
            no_ship = ship < 0
            shp = np.maximum(ship, 0)
            bill = part("o_bill")
            cust = part("o_cust")
            role = np.full(n, -1)
            is_contact = (cust >= self.cu_off_contact) & (cust < self.cu_off_staff)
            role[is_contact] = self.k_role[cust[is_contact] - self.cu_off_contact]
            comp = part("o_comp")
            chan = part("o_chan")
            total, refunded = part("o_total"), part("o_refunded")
            fulfilled_at, cancelled_at = part("o_fulfilled_at"), part("o_cancelled_at")
            is_test, due, paid_at = part("o_is_test"), part("o_due"), part("o_paid_at")
            days_past_due = part("o_days_past_due")
            return {
                "order_id": ints(oid),
                "name": names,
                "created_at": timestamp(part("o_t")),
                "customer_id": ints(self.customer_id[cust]),
                "company_id": ints(comp + 1, null=comp < 0),
                "buyer_role": categorical(role, V.B2B_ROLES),
                "sales_channel": categorical(chan, CHANNELS),
                "source_name": categorical(chan, SOURCES),
                "referrer_source": categorical(part("o_src"), src_labels),
                "referring_channel": categorical(part("o_chn"), chan_labels),
                "presentment_currency": categorical(currency_of_location[bill], currency_labels),
                "shop_currency": categorical(np.zeros(n, dtype=np.int64), [CURRENCY]),
                "financial_status": categorical(part("o_fin"), FIN_STATUS),
                "fulfillment_status": categorical(part("o_ful"), FUL_STATUS),
                "fulfilled_at": timestamp(fulfilled_at, null=fulfilled_at < 0),
                "discount_codes": string_lists(code_offsets, code_values),
                "line_count": ints(part("o_n_lines"), type=pa.int32()),
                "item_count": ints(part("o_items"), type=pa.int32()),
                "line_items_total": money(part("o_gross")),
                "total_discounts": money(part("o_discounts")),
                "subtotal": money(part("o_subtotal")),
                "shipping": money(part("o_shipping")),
                "taxes": money(part("o_taxes")),
                "total": money(total),
                "total_refunded": money(refunded),
                "current_total": money(total - refunded),
                "shipping_method": categorical(part("o_ship_method"), SHIP_METHODS),
                "tax_exempt": bools(part("o_tax_exempt")),
                "cancelled_at": timestamp(cancelled_at, null=cancelled_at < 0),
                "cancel_reason": categorical(part("o_cancel_reason"), CANCEL_REASONS),
                "is_test": bools(is_test),
                "customer_order_number": ints(part("o_seq"), null=is_test, type=pa.int32()),
                "is_first_order": bools(part("o_first"), null=is_test),
                **_address_columns(loc, bill, shp, no_ship),
                "payment_terms": categorical(part("o_terms"), TERMS),
                "payment_due_at": timestamp(due, null=due < 0),
                "paid_at": timestamp(paid_at, null=paid_at < 0),
                "invoice_status": categorical(part("o_invoice_status"), INVOICE_STATUS),
                "days_past_due": ints(np.maximum(days_past_due, 0), null=days_past_due < 0, type=pa.int32()),
            }

        return ChunkedTable(self.n_orders, rows)

    def _title_labels(self) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
        """Labels of titles/SKUs at the time of sale, and the maps from line codes to them."""
        cat = self.cat
        titles, tmap = _unique_labels(cat.title + [t or cat.title[i] for i, t in enumerate(cat.old_title)])
        skus, smap = _unique_labels(cat.v_sku + [s or cat.v_sku[i] for i, s in enumerate(cat.v_old_sku)])
        return titles, tmap, skus, smap

    def _line_items_table(self) -> ChunkedTable:
        """The order lines; the writer converts them to Arrow a row group at a time."""
        cat = self.cat
        titles, tmap, skus, smap = self._title_labels()
        variant_titles, variant_title_of = _unique_labels(cat.v_title)
        price_list = self._line_price_list()

        def rows(first: int, stop: int) -> dict[str, pa.Array]:
            r = slice(first, stop)

            def part(name: str) -> np.ndarray:
                return self._rows_of(name, r)

            variant = part("l_variant")
            return {
                "line_item_id": ints(np.arange(first + 1, stop + 1)),
                "order_id": ints(part("l_order") + 1),
                "product_id": ints(part("l_product") + 1),
                "variant_id": ints(variant + 1),
                "title": categorical(tmap[part("l_title_idx")], titles),
                "variant_title": categorical(variant_title_of[variant], variant_titles),
                "sku": categorical(smap[part("l_sku_idx")], skus),
                "quantity": ints(part("l_qty"), type=pa.int32()),
                "price": money(part("l_price")),
                "gross": money(part("l_gross")),
                "line_discount": money(part("l_line_disc")),
                "allocated_order_discount": money(part("l_alloc")),
                "total_discount": money(part("l_line_disc") + part("l_alloc")),
                "net": money(part("l_net")),
                "tax": money(part("l_tax")),
                "unit_cost": money(cat.v_cost[variant]),
                "cost": money(part("l_cost")),
                "price_list": categorical(price_list[r], PRICE_LISTS),
                "contract_price": money(part("l_contract_price"), null=~self.l_b2b[r]),
                "volume_break": categorical(part("l_break"), VOLUME_BREAKS),
                "contract_discount": money(part("l_contract_disc")),
                "volume_break_discount": money(part("l_break_disc")),
            }

        return ChunkedTable(self.n_lines, rows)

    def _line_price_list(self) -> np.ndarray:
        """The price list of each line's company (-1 for DTC lines)."""
        comp = self.o_comp[self.l_order]
        return np.where(self.l_b2b, self.c_price_list[np.maximum(comp, 0)], -1)

    def _refunds_table(self) -> dict[str, pa.Array]:
        nr = len(self.r_order)
        reason_labels = list(RETURN_REASONS) + [f"order_cancelled:{r}" for r in CANCEL_REASONS]
        reason = np.where(self.r_cancel, len(RETURN_REASONS) + self.o_cancel_reason[self.r_order], self.r_reason)
        return {
            "refund_id": ints(np.arange(1, nr + 1)),
            "order_id": ints(self.r_order + 1),
            "created_at": timestamp(self.r_t),
            "kind": categorical(self.r_cancel.astype(np.int64), ["return", "cancellation"]),
            "reason": categorical(reason, reason_labels),
            "restock": bools(self.r_restock),
            "line_count": ints(self.r_lines, type=pa.int32()),
            "item_count": ints(self.r_units, type=pa.int32()),
            "refunded_subtotal": money(self.r_sub),
            "refunded_tax": money(self.r_tax),
            "refunded_shipping": money(self.r_ship),
            "total_refunded": money(self.r_sub + self.r_tax + self.r_ship),
        }

    def _refund_line_items_table(self) -> dict[str, pa.Array]:
        n = len(self.rl_line)
        reason = np.where(self.rl_reason >= 0, self.rl_reason,
                          len(RETURN_REASONS) + self.o_cancel_reason[self.rl_order])
        reason_labels = list(RETURN_REASONS) + [f"order_cancelled:{r}" for r in CANCEL_REASONS]
        return {
            "refund_line_item_id": ints(np.arange(1, n + 1)),
            "refund_id": ints(self.rl_refund + 1),
            "order_id": ints(self.rl_order + 1),
            "line_item_id": ints(self.rl_line + 1),
            "product_id": ints(self.l_product[self.rl_line] + 1),
            "variant_id": ints(self.l_variant[self.rl_line] + 1),
            "quantity": ints(self.rl_qty, type=pa.int32()),
            "subtotal": money(self.rl_sub),
            "tax": money(self.rl_tax),
            "restock_type": categorical(self.rl_restock, RESTOCK_TYPES),
            "reason": categorical(reason, reason_labels),
        }

    def _checkouts_table(self) -> dict[str, pa.Array]:
        n = len(self.ck_t)
        loc = self.loc
        sloc = self.s_loc[self.ck_session]
        cust = self.ck_cust
        return {
            "checkout_id": ints(np.arange(1, n + 1)),
            "created_at": timestamp(self.ck_t),
            "completed_at": timestamp(self.ck_completed, null=self.ck_completed < 0),
            "session_id": ints(self.ck_session + 1),
            "customer_id": ints(self.customer_id[np.maximum(cust, 0)], null=cust < 0),
            "order_id": ints(self.ck_order + 1, null=self.ck_order < 0),
            "sales_channel": categorical(self.ck_channel, CHANNELS),
            "stage_reached": categorical(self.ck_stage, STAGES),
            "is_abandoned": bools(self.ck_abandoned),
            "email_captured": bools(self.ck_email),
            "recovery_email_sent": bools(self.ck_sent),
            "recovered": bools(self.ck_recovered),
            "value": money(self.ck_value),
            "item_count": ints(self.ck_items, type=pa.int32()),
            "device_type": categorical(self.s_device[self.ck_session], DEVICES),
            "country": categorical(loc.country[sloc], loc.countries),
            "region": categorical(loc.region[sloc], loc.regions),
        }

    def _sessions_table(self) -> ChunkedTable:
        """The sessions, converted to Arrow one row group at a time by the writer (the largest table:
        a whole Arrow copy of it would double what the generator holds)."""
        loc = self.loc
        customer_of = self.customer_id
        spilled = self.sessions  # the columns, in the scratch folder
        src_labels, chan_labels, paths, type_labels = self.src_labels, self.chan_labels, self.paths, self.type_labels

        def rows(first: int, stop: int) -> dict[str, pa.Array]:
            def column(name: str) -> np.ndarray:
                return spilled.read(name, first, stop)

            rows_cust = column("cust")
            anonymous = rows_cust < 0
            customer_id = np.zeros(stop - first, dtype=np.int64)
            customer_id[~anonymous] = customer_of[rows_cust[~anonymous]]
            rows_pageviews = column("pageviews")
            rows_loc = column("loc")
            rows_order = column("order")
            return {
                "session_id": ints(np.arange(first + 1, stop + 1)),
                "started_at": timestamp(column("started")),
                "duration_seconds": ints(column("duration"), type=pa.int32()),
                "pageviews": ints(rows_pageviews, type=pa.int32()),
                "bounced": bools(rows_pageviews <= 1),
                "visitor_id": ints(column("visitor")),
                "customer_id": ints(customer_id, null=anonymous),
                "referrer_source": categorical(column("source"), src_labels),
                "referring_channel": categorical(column("channel"), chan_labels),
                "device_type": categorical(column("device"), DEVICES),
                "country": categorical(loc.country[rows_loc], loc.countries),
                "region": categorical(loc.region[rows_loc], loc.regions),
                "landing_page_path": categorical(column("page"), paths),
                "landing_page_type": categorical(column("page_type"), type_labels),
                "human_or_bot": categorical(column("bot").view(np.int8), ["human", "bot"]),
                "added_to_cart": bools(column("cart")),
                "reached_checkout": bools(column("reached")),
                "completed_checkout": bools(column("completed")),
                "order_id": ints(rows_order + 1, null=rows_order < 0),
                "sales_channel": categorical(np.where(column("portal"), np.int8(WHOLESALE), np.int8(ONLINE)),
                                             CHANNELS),
            }

        return ChunkedTable(self.n_sessions, rows, from_files=True)

    def _drafts_table(self) -> dict[str, pa.Array]:
        n = len(self.q_t)
        comp = self.q_comp
        reps = np.array(self.c_rep + [""], dtype=object)
        rep_idx = np.where(comp >= 0, comp, len(self.c_rep))
        rep = reps[rep_idx]
        rep_labels = sorted(set(self.c_rep))
        rep_code = np.array([rep_labels.index(r) if r else -1 for r in rep])
        names = ("#D" + pl.Series(np.arange(1, n + 1)).cast(pl.String)).to_arrow()
        return {
            "draft_order_id": ints(np.arange(1, n + 1)),
            "name": names,
            "status": categorical(self.q_status, ["open", "invoice_sent", "completed", "expired"]),
            "created_at": timestamp(self.q_t),
            "invoice_sent_at": timestamp(self.q_sent, null=self.q_sent < 0),
            "completed_at": timestamp(self.q_completed, null=self.q_completed < 0),
            "expires_at": timestamp(self.q_expires, null=self.q_expires < 0),
            "order_id": ints(self.q_order + 1, null=self.q_order < 0),
            "customer_id": ints(self.customer_id[self.q_cust]),
            "company_id": ints(comp + 1, null=comp < 0),
            "sales_rep": categorical(rep_code, rep_labels),
            "line_count": ints(self.q_lines, type=pa.int32()),
            "item_count": ints(self.q_items, type=pa.int32()),
            "subtotal": money(self.q_sub),
            "taxes": money(self.q_tax),
            "shipping": money(self.q_ship),
            "total": money(self.q_sub + self.q_tax + self.q_ship),
            "tax_exempt": bools(self.q_exempt),
            "payment_terms": categorical(self.q_terms, TERMS),
            "payment_due_at": timestamp(self.q_due, null=self.q_due < 0),
        }

    def _sales_table(self) -> ChunkedTable:
        """The sales rows, sorted; the writer converts them to Arrow a row group at a time."""
        real = ~self.o_is_test
        # order rows: product lines, then shipping lines
        li = np.flatnonzero(real[self.l_order])
        so = np.flatnonzero(real & (self.o_shipping > 0))
        # reversal rows: refund lines, then refunded shipping
        rs = np.flatnonzero(self.r_ship > 0)
        parts_order = [self.l_order[li], so, self.rl_order, self.r_order[rs]]
        order = np.concatenate(parts_order)
        n_li, n_so, n_rl, n_rs = len(li), len(so), len(self.rl_line), len(rs)
        N = len(order)
        happened = np.concatenate([self.o_t[self.l_order[li]], self.o_t[so], self.r_t[self.rl_refund], self.r_t[rs]])
        rev_event = np.where(self.r_cancel, 2, 1)
        event = np.concatenate([np.zeros(n_li + n_so, dtype=np.int64), rev_event[self.rl_refund], rev_event[rs]])
        is_ship = np.concatenate([np.zeros(n_li), np.ones(n_so), np.zeros(n_rl), np.ones(n_rs)]).astype(bool)
        line = np.concatenate([li, np.full(n_so, -1), self.rl_line, np.full(n_rs, -1)])
        srt = np.lexsort((np.where(line >= 0, line, np.iinfo(np.int64).max), event, order, happened))
        del order, happened, event, is_ship, line
        # No column is materialised whole: each row group gathers its rows from the four parts (order
        # lines, shipping lines, refund lines, refunded shipping) by their position before the sort.
        part_start = np.array([0, n_li, n_li + n_so, n_li + n_so + n_rl])
        Part = Callable[[np.ndarray], np.ndarray] | int
        at = self._rows_of  # the rows asked for, widened (the columns are held narrow)
        columns: dict[str, tuple[Part, Part, Part, Part]] = {
            "order": (lambda j: at("l_order", li[j]), lambda j: so[j], lambda j: at("rl_order", j),
                      lambda j: at("r_order", rs[j])),
            "happened": (lambda j: at("o_t", at("l_order", li[j])), lambda j: at("o_t", so[j]),
                         lambda j: at("r_t", at("rl_refund", j)), lambda j: at("r_t", rs[j])),
            "event": (0, 0, lambda j: rev_event[at("rl_refund", j)], lambda j: rev_event[rs[j]]),
            "is_ship": (0, 1, 0, 1),
            "line": (lambda j: li[j], -1, lambda j: at("rl_line", j), -1),
            "qty": (lambda j: at("l_qty", li[j]), 0, lambda j: -at("rl_qty", j), 0),
            "gross": (lambda j: at("l_gross", li[j]), 0, 0, 0),
            "disc": (lambda j: -(at("l_line_disc", li[j]) + at("l_alloc", li[j])), 0, 0, 0),
            "rev": (0, 0, lambda j: -at("rl_sub", j), 0),
            "tax": (lambda j: at("l_tax", li[j]), 0, lambda j: -at("rl_tax", j), 0),
            "ship": (0, lambda j: at("o_shipping", so[j]), 0, lambda j: -at("r_ship", rs[j])),
            "cost": (lambda j: at("l_cost", li[j]), 0, lambda j: -at("rl_cost", j), 0),
            "contract": (lambda j: -at("l_contract_disc", li[j]), 0, 0, 0),
            "breaks": (lambda j: -at("l_break_disc", li[j]), 0, 0, 0),
        }
        titles, tmap, skus, smap = self._title_labels()

        def rows(first: int, stop: int) -> dict[str, pa.Array]:
            source = srt[first:stop]
            part = np.searchsorted(part_start, source, side="right") - 1
            local = source - part_start[part]
            in_part = [np.flatnonzero(part == k) for k in range(4)]

            def gather(parts: tuple[Part, Part, Part, Part]) -> np.ndarray:
                out = np.zeros(len(source), dtype=np.int64)
                for rows_k, value in zip(in_part, parts, strict=True):
                    out[rows_k] = value(local[rows_k]) if callable(value) else value
                return out

            v = {name: gather(parts) for name, parts in columns.items()}
            gross, disc, rev, tax, ship = v["gross"], v["disc"], v["rev"], v["tax"], v["ship"]
            net = gross + disc + rev
            total = net + tax + ship
            return self._sales_columns(first, v["order"], v["happened"], v["event"], v["is_ship"].astype(bool),
                                       v["line"], v["qty"], gross, disc, rev, tax, ship, v["cost"], net, total,
                                       v["contract"], v["breaks"], titles, tmap, skus, smap)

        return ChunkedTable(N, rows)

    def _sales_columns(self, first: int, order: np.ndarray, happened: np.ndarray, event: np.ndarray,
                       is_ship: np.ndarray, line: np.ndarray, qty: np.ndarray, gross: np.ndarray, disc: np.ndarray,
                       rev: np.ndarray, tax: np.ndarray, ship: np.ndarray, cost: np.ndarray, net: np.ndarray,
                       total: np.ndarray, contract: np.ndarray, breaks: np.ndarray, titles: list[str],
                       tmap: np.ndarray, skus: list[str], smap: np.ndarray) -> dict[str, pa.Array]:
        """The Arrow columns of sales rows first, first + 1, ... (one row group of `_sales_table`)."""
        loc = self.loc
        N = len(order)
        has_line = line >= 0
        ln = np.maximum(line, 0)
        ship_loc = self._rows_of("o_ship", order)
        no_ship = ship_loc < 0
        shp = np.maximum(ship_loc, 0)
        bill = self._rows_of("o_bill", order)
        comp = self._rows_of("o_comp", order)
        names = pl.Series(1001 + order).cast(pl.String)
        names = ("#" + names).to_arrow()
        code = self._rows_of("o_code", order)
        return {
            "sale_id": ints(np.arange(first + 1, first + N + 1)),
            "order_id": ints(order + 1),
            "order_name": names,
            "line_item_id": ints(ln + 1, null=~has_line),
            "happened_at": timestamp(happened),
            "event_type": categorical(event, ["order", "refund", "cancellation"]),
            "line_type": categorical(is_ship.astype(np.int64), ["product", "shipping"]),
            "product_id": ints(self._rows_of("l_product", ln) + 1, null=~has_line),
            "variant_id": ints(self._rows_of("l_variant", ln) + 1, null=~has_line),
            "customer_id": ints(self.customer_id[self._rows_of("o_cust", order)]),
            "company_id": ints(comp + 1, null=comp < 0),
            "sales_channel": categorical(self._rows_of("o_chan", order), CHANNELS),
            "source_name": categorical(self._rows_of("o_chan", order), SOURCES),
            **_address_columns(loc, bill, shp, no_ship),
            "discount_code": categorical(np.where(code == NO_CODE, -1, code), CODES),
            "is_first_order": bools(self._rows_of("o_first", order)),
            "quantity": ints(qty, type=pa.int32()),
            "gross_sales": money(gross),
            "discounts": money(disc),
            "sales_reversals": money(rev),
            "net_sales": money(net),
            "taxes": money(tax),
            "shipping_charges": money(ship),
            "total_sales": money(total),
            "cost": money(cost),
            "product_title_at_sale": categorical(tmap[self._rows_of("l_title_idx", ln)], titles, null=~has_line),
            "variant_sku_at_sale": categorical(smap[self._rows_of("l_sku_idx", ln)], skus, null=~has_line),
            "price_list": categorical(np.where(comp >= 0, self.c_price_list[np.maximum(comp, 0)], -1), PRICE_LISTS),
            "volume_break": categorical(np.where(has_line, self._rows_of("l_break", ln), -1), VOLUME_BREAKS),
            "contract_discounts": money(contract),
            "volume_break_discounts": money(breaks),
        }

    # ---- inventory and payments (streams of their own: the tables above stay as they were) ----
    def _stream(self, index: int) -> np.random.Generator:
        """The generator of spawned child `index` of the store's seed (children 0-15 are the tables')."""
        root = self.seed_sequence
        return np.random.default_rng(np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, index)))

    def _inventory_table(self, rng: np.random.Generator) -> ChunkedTable:
        """Daily inventory per variant and location, from the units the orders took and the refunds put back.

        The warehouse stocks every variant from the day its product was created (or the first day of
        the data); the flagship store stocks the variants it has sold at the counter. Each
        (variant, location) follows a reorder-point policy: when the units at the end of a day fall
        to the reorder point and no purchase order is open, one is placed for the order-up-to level
        and arrives after a lead time; a day whose sales would take stock below zero is covered by
        an expedited receipt that day (orders are never refused). Discontinued products are not
        reordered after they are discontinued. Restocked returns and cancellations go back to the
        location that sold them. Per row: ending = starting + received + returned - sold; a day's
        starting units are the previous day's ending units; `units_sold_trailing_30_days` is the
        units sold on that day and the 29 before it.
        """
        cal, cat = self.cal, self.cat
        n_days, n_var = cal.n_days, cat.n_variants
        real = ~self.o_is_test
        lines = np.flatnonzero(real[self.l_order])
        line_loc = np.where(self.o_chan[self.l_order[lines]] == POS, FLAGSHIP, WAREHOUSE)
        line_day = cal.day_of(self.o_t[self.l_order[lines]])
        restocked = np.flatnonzero(self.rl_restock != 1)
        back_line = self.rl_line[restocked]
        back_loc = np.where(self.o_chan[self.l_order[back_line]] == POS, FLAGSHIP, WAREHOUSE)
        back_day = cal.day_of(self.r_t[self.rl_refund[restocked]])
        # items: every variant at the warehouse, then the variants the flagship has sold
        at_flagship = np.zeros(n_var, dtype=bool)
        at_flagship[self.l_variant[lines][line_loc == FLAGSHIP]] = True
        item_variant = np.concatenate([np.arange(n_var), np.flatnonzero(at_flagship)])
        item_loc = np.concatenate([np.zeros(n_var, dtype=np.int64), np.ones(int(at_flagship.sum()), dtype=np.int64)])
        n_items = len(item_variant)
        item_of = np.full((2, n_var), -1, dtype=np.int64)
        item_of[item_loc, item_variant] = np.arange(n_items)
        cells = n_days * n_items

        def daily(item: np.ndarray, day: np.ndarray, units: np.ndarray) -> np.ndarray:
            flat = np.bincount(day * n_items + item, weights=units, minlength=cells)
            return flat.round().astype(np.int32).reshape(n_days, n_items)

        sold = daily(item_of[line_loc, self.l_variant[lines]], line_day, self.l_qty[lines])
        returned = daily(item_of[back_loc, self.l_variant[back_line]], back_day, self.rl_qty[restocked])
        product = cat.v_product[item_variant]
        first_day = cal.day_of(np.maximum(cat.created_at[product], self.start_us))
        first_day = np.where(cat.created_at[product] < self.start_us, 0, first_day)
        # no reorders after a product is discontinued
        stop_day = np.where(cat.discontinued_at[product] >= 0, cal.day_of(np.maximum(cat.discontinued_at[product], 0)),
                            n_days)
        active_days = np.maximum(n_days - first_day, 1)
        per_day = np.maximum(sold.sum(axis=0) / active_days, 1 / 60)
        lead = np.where(item_loc == FLAGSHIP, rng.integers(2, 6, n_items), rng.integers(5, 22, n_items))
        safety = rng.uniform(5.0, 15.0, n_items)
        cycle = rng.uniform(20.0, 60.0, n_items)
        reorder_point = np.ceil(per_day * (lead + safety)).astype(np.int64)
        up_to = reorder_point + np.maximum(np.ceil(per_day * cycle).astype(np.int64), 6)
        level = np.round(up_to * rng.uniform(0.6, 1.0, n_items)).astype(np.int64)
        po_day = np.full(n_items, -1, dtype=np.int64)
        po_qty = np.zeros(n_items, dtype=np.int64)
        starting = np.empty((n_days, n_items), dtype=np.int32)
        received = np.empty((n_days, n_items), dtype=np.int32)
        ending = np.empty((n_days, n_items), dtype=np.int32)
        incoming = np.empty((n_days, n_items), dtype=np.int32)
        for t in range(n_days):
            arriving = po_day == t
            got = np.where(arriving, po_qty, 0)
            po_day[arriving] = -1
            after = level + got + returned[t] - sold[t]
            short = np.maximum(-after, 0)
            got = got + short
            after = after + short
            reorder = (po_day < 0) & (after <= reorder_point) & (t >= first_day) & (t < stop_day)
            po_day = np.where(reorder, t + lead, po_day)
            po_qty = np.where(reorder, up_to - after, po_qty)
            starting[t], received[t], ending[t] = level, got, after
            incoming[t] = np.where(po_day > t, po_qty, 0)
            level = after
        # units sold in the 30 days up to each day (the velocity behind days of inventory remaining)
        running = np.cumsum(sold, axis=0, dtype=np.int64)
        trailing = running.copy()
        trailing[30:] -= running[:-30]
        del running
        # the rows: (day, item) cells from each item's first day, day by day; converted to Arrow a row
        # group at a time by the writer
        cell = np.flatnonzero((np.arange(n_days)[:, None] >= first_day[None, :]).ravel())
        epoch_day = (cal.dates - np.datetime64("1970-01-01", "D")).astype(np.int32)
        matrices = (starting, received, sold, returned, ending, incoming, trailing)

        def rows(first: int, stop: int) -> dict[str, pa.Array]:
            at = cell[first:stop]
            day_index, item = np.divmod(at, n_items)
            starting, received, sold, returned, ending, incoming, trailing = (m.ravel()[at] for m in matrices)
            return {
                "day": pa.array(epoch_day[day_index], type=pa.int32()).cast(pa.date32()),
                "variant_id": ints(item_variant[item] + 1),
                "product_id": ints(product[item] + 1),
                "location": categorical(item_loc[item], INVENTORY_LOCATIONS),
                "is_tracked": bools(np.ones(len(item), dtype=bool)),
                "starting_units": ints(starting, type=pa.int32()),
                "units_received": ints(received, type=pa.int32()),
                "units_sold": ints(sold, type=pa.int32()),
                "units_returned": ints(returned, type=pa.int32()),
                "ending_units": ints(ending, type=pa.int32()),
                "incoming_units": ints(incoming, type=pa.int32()),
                "units_sold_trailing_30_days": ints(trailing, type=pa.int32()),
            }

        return ChunkedTable(len(cell), rows)

    def _transactions_table(self, rng: np.random.Generator) -> dict[str, pa.Array]:
        """Payment transactions of the orders: what was charged, refunded, voided, and what it cost.

        Orders paid at checkout get a successful `sale` at the order time for the order total (some
        card payments after a declined attempt, a `failure`); invoiced orders (Net 30 / 60) get it when
        the invoice is paid, for the total less what was refunded before the payment, and none while
        unpaid; point-of-sale orders cancelled before capture get an `authorization` and a `void`.
        Each refund of a paid order after its payment is a `refund` transaction for the refunded
        subtotal, tax and shipping, on the sale's gateway. So for every paid order, successful sales
        minus refunds = total - total refunded, to the cent. Fees: processing fees on successful
        sales (card and Shop Pay 2.9% + 30c online, 2.6% + 10c in person; PayPal 3.49% + 49c; cash
        and bank deposits none); refunds do not return the fee.
        """
        n = self.n_orders
        real = ~self.o_is_test
        invoiced = self.o_due >= 0
        pos = self.o_chan == POS
        u = rng.random(n)
        method = np.select(
            [invoiced, pos, self.o_chan == ONLINE],
            [np.where(u < 0.7, 4, 0), np.where(u < 0.78, 0, 3), np.select([u < 0.68, u < 0.88], [0, 1], 2)],
            np.where(u < 0.85, 0, 4))
        brand = np.where(method <= 1, _pick(rng, n, [0.55, 0.28, 0.12, 0.05]), -1)
        failed_first = (method <= 1) & (rng.random(n) < 0.03)
        retry_wait = (rng.uniform(40, 240, n) * US).astype(np.int64)
        paid = real & (self.o_paid_at >= 0)
        voided = real & ~invoiced & (self.o_paid_at < 0) & (self.o_cancelled_at >= 0)
        # refunds of paid orders: before the payment they lower it, after it they are refunds
        r_amount = self.r_sub + self.r_tax + self.r_ship
        r_paid = paid[self.r_order]
        before = r_paid & (self.r_t < self.o_paid_at[self.r_order])
        after = r_paid & ~before & (r_amount > 0)
        sale_amount = self.o_total - _sum_by(self.r_order[before], r_amount[before], n)
        sales = np.flatnonzero(paid & (sale_amount > 0))
        fails = sales[failed_first[sales]]
        voids = np.flatnonzero(voided)
        refunds = np.flatnonzero(after)
        order = np.concatenate([sales, fails, voids, voids, self.r_order[refunds]])
        kind = np.concatenate([np.zeros(len(sales) + len(fails), dtype=np.int64), np.full(len(voids), 2),
                               np.full(len(voids), 3), np.ones(len(refunds), dtype=np.int64)])
        status = np.concatenate([np.zeros(len(sales), dtype=np.int64), np.ones(len(fails), dtype=np.int64),
                                 np.zeros(2 * len(voids) + len(refunds), dtype=np.int64)])
        when = np.concatenate([self.o_paid_at[sales], self.o_paid_at[fails] - retry_wait[fails], self.o_t[voids],
                               self.o_cancelled_at[voids], self.r_t[refunds]])
        amount = np.concatenate([sale_amount[sales], sale_amount[fails], self.o_total[voids], self.o_total[voids],
                                 r_amount[refunds]])
        m = method[order]
        in_person = pos[order] & (m == 0)
        fee = np.where(in_person, _bp_of(amount, np.full(len(amount), FEE_BP_IN_PERSON)) + FEE_FIXED_IN_PERSON,
                       _bp_of(amount, FEE_BP[m]) + FEE_FIXED[m])
        fee = np.where((kind == 0) & (status == 0), fee, 0)
        srt = np.lexsort((kind, order, when))
        order, kind, status, when, amount, fee, m = (a[srt] for a in (order, kind, status, when, amount, fee, m))
        N = len(order)
        names = ("#" + pl.Series(1001 + order).cast(pl.String)).to_arrow()
        return {
            "transaction_id": ints(np.arange(1, N + 1)),
            "order_id": ints(order + 1),
            "order_name": names,
            "customer_id": ints(self.customer_id[self.o_cust[order]]),
            "created_at": timestamp(when),
            "kind": categorical(kind, TRANSACTION_KINDS),
            "status": categorical(status, TRANSACTION_STATUSES),
            "gateway": categorical(*_remap(m, list(PAYMENT_GATEWAYS))),
            "payment_method": categorical(m, PAYMENT_METHODS),
            "card_brand": categorical(brand[order], CARD_BRANDS),
            "is_shop_pay": bools(m == 1),
            "sales_channel": categorical(self.o_chan[order], CHANNELS),
            "location": categorical(np.where(pos[order], 0, -1), INVENTORY_LOCATIONS[FLAGSHIP:]),
            "amount": money(amount),
            "fee": money(fee),
            "currency": categorical(np.zeros(N, dtype=np.int64), [CURRENCY]),
        }
