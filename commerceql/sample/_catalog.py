"""The product catalogue: products, variants, and how their popularity moves month by month."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from commerceql.sample import _vocab as V
from commerceql.sample._calendar import DAY_US, Calendar

N_TYPES = len(V.PRODUCT_TYPES)
TYPE_NAMES = [t["name"] for t in V.PRODUCT_TYPES]
GROUP_DTC_WARM, GROUP_DTC_COLD, GROUP_B2B = 0, 1, 2


@dataclass
class Catalog:
    # products (index p = product_id - 1)
    title: list[str]
    old_title: list[str | None]
    renamed_at: np.ndarray  # UTC us, -1 when never renamed
    handle: list[str]
    ptype: np.ndarray
    vendor: list[str]
    collection: list[str]
    created_at: np.ndarray
    discontinued_at: np.ndarray  # -1 when active
    launch_month: np.ndarray
    disc_month: np.ndarray  # n_months when never discontinued
    fading: np.ndarray
    popularity: np.ndarray  # Zipf weight
    # variants (index v = variant_id - 1)
    v_product: np.ndarray
    v_title: list[str]
    v_sku: list[str]
    v_old_sku: list[str | None]
    v_sku_changed_at: np.ndarray
    v_price: np.ndarray  # cents
    v_compare_at: np.ndarray  # cents, -1 when none
    v_cost: np.ndarray  # cents
    v_position: np.ndarray
    v_share: np.ndarray  # share of the product's demand
    # month x variant sampling weights per group, markdown flags and fading per month x product
    weights: np.ndarray  # (3, n_months, n_variants)
    markdown: np.ndarray  # (n_months, n_products) bool
    fade: np.ndarray  # (n_months, n_products) demand multiplier of fading products

    @property
    def n_products(self) -> int:
        return len(self.title)

    @property
    def n_variants(self) -> int:
        return len(self.v_title)


def _price(x: np.ndarray) -> np.ndarray:
    """Retail-style prices in cents: 24.99, 129.99, 7.49."""
    x = np.maximum(x, 3.0)
    dollars = np.floor(x)
    cents = np.where(x < 10, np.where(x - dollars < 0.5, 49, 99), 99)
    return (dollars * 100 + cents).astype(np.int64)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def build_catalog(rng: np.random.Generator, cal: Calendar, n_products: int) -> Catalog:
    types = V.PRODUCT_TYPES
    type_p = np.array([t["n"] for t in types])
    ptype = rng.choice(N_TYPES, size=n_products, p=type_p / type_p.sum())
    ptype.sort(kind="stable")  # catalogue ordered by type, like an admin export
    rng.shuffle(ptype)
    n_months = cal.n_months
    start_us = int(cal.day_start[0])

    # Titles, vendors, collections
    titles: list[str] = []
    seen: set[str] = set()
    vendors: list[str] = []
    collections: list[str] = []
    for t in ptype:
        spec = types[t]
        adjs, mats, nouns = V.TITLE_PARTS[spec["name"]]
        for _ in range(60):
            title = f"{adjs[rng.integers(len(adjs))]} {mats[rng.integers(len(mats))]} {nouns[rng.integers(len(nouns))]}"
            if title not in seen:
                break
        else:
            title = f"{title} {len(seen)}"
        seen.add(title)
        titles.append(title)
        vendors.append(V.VENDORS[spec["name"]][rng.integers(len(V.VENDORS[spec["name"]]))])
        collections.append(V.COLLECTIONS[spec["name"]][rng.integers(len(V.COLLECTIONS[spec["name"]]))])
    handles = [_slug(t) for t in titles]

    # Lifecycle: most products exist at launch; some launch mid-period; some are discontinued.
    launch_month = np.where(rng.random(n_products) < 0.22, rng.integers(1, max(n_months, 2), n_products), 0)
    launch_month = np.minimum(launch_month, n_months - 1)
    rank = rng.permutation(n_products)
    popularity = (rank + 6.0) ** -1.05
    created_at = np.empty(n_products, dtype=np.int64)
    pre = launch_month == 0
    created_at[pre] = start_us - (rng.random(pre.sum()) * 170 + 10).astype(np.int64) * DAY_US \
        - rng.integers(0, DAY_US, pre.sum())
    lm = launch_month[~pre]
    m_start = cal.day_start[cal.month_start_day[lm - 1]]
    m_end = cal.day_start[cal.month_start_day[lm]]
    created_at[~pre] = m_start + (rng.random(len(lm)) * (m_end - m_start)).astype(np.int64)

    few_variants = np.isin(ptype, [i for i, t in enumerate(types) if t["variants"] in ("power", "single", "battery")])
    fading = np.zeros(n_products, dtype=bool)
    candidates = np.flatnonzero(few_variants & pre & (rank < 70))
    n_fading = min(len(candidates), max(3, n_products // 35))
    fading[rng.choice(candidates, size=n_fading, replace=False)] = True
    disc_month = np.full(n_products, n_months)
    can_disc = ~fading & (launch_month < n_months - 8) & (rank >= 5)
    disc = can_disc & (rng.random(n_products) < 0.10)
    lo = launch_month[disc] + 4
    disc_month[disc] = lo + (rng.random(disc.sum()) * np.maximum(n_months - 1 - lo, 1)).astype(np.int64)
    disc_month = np.minimum(disc_month, n_months)
    discontinued_at = np.full(n_products, -1, dtype=np.int64)
    dm = disc_month[disc]
    d_start = cal.day_start[cal.month_start_day[np.minimum(dm, n_months - 1)]]
    d_end = np.where(dm + 1 < n_months, cal.day_start[cal.month_start_day[np.minimum(dm + 1, n_months - 1)]], cal.as_of)
    discontinued_at[disc] = d_start + (rng.random(disc.sum()) * np.maximum(d_end - d_start, 1)).astype(np.int64)
    discontinued_at = np.where(discontinued_at > cal.as_of, -1, discontinued_at)
    disc_month = np.where(discontinued_at < 0, n_months, disc_month)

    # Renames: the title at the time of sale differs before the rename
    old_titles = [None] * n_products
    renamed_at = np.full(n_products, -1, dtype=np.int64)
    for p in np.flatnonzero(rng.random(n_products) < 0.05):
        lo_t = max(int(created_at[p]), start_us) + 30 * DAY_US
        hi_t = cal.as_of - 30 * DAY_US if discontinued_at[p] < 0 else int(discontinued_at[p])
        if hi_t <= lo_t:
            continue
        renamed_at[p] = lo_t + int(rng.random() * (hi_t - lo_t))
        adjs = V.TITLE_PARTS[types[ptype[p]]["name"]][0]
        first, rest = titles[p].split(" ", 1)
        alt = [a for a in adjs if a != first]
        old = f"{alt[rng.integers(len(alt))]} {rest}"
        old_titles[p] = f"{old} (Original)" if old in seen else old

    # Variants
    base = np.exp(np.log([types[t]["price"] for t in ptype]) + rng.normal(0, 1, n_products)
                  * np.array([types[t]["sigma"] for t in ptype]))
    has_compare = rng.random(n_products) < 0.22
    compare_factor = 1.15 + rng.random(n_products) * 0.25
    cost_noise = 0.85 + rng.random(n_products) * 0.3
    v_product, v_title, v_sku, v_factor, v_share, v_position = [], [], [], [], [], []
    for p in range(n_products):
        spec = types[ptype[p]]
        style = spec["variants"]
        code = f"{spec['code']}-{p + 1:04d}"
        options: list[tuple[str, str, float, float]] = []  # title, sku suffix, price factor, share
        if style == "apparel":
            k = 1 + rng.choice(3, p=[0.45, 0.35, 0.2])
            colors = rng.choice(len(V.APPAREL_COLORS), size=k, replace=False)
            cw = np.array([0.55, 0.3, 0.15][:k])
            cw = cw / cw.sum()
            for ci, c in enumerate(colors):
                for si, size in enumerate(V.APPAREL_SIZES):
                    name = V.APPAREL_COLORS[c]
                    options.append((f"{size} / {name}", f"{V.COLOR_CODES[name]}-{size}",
                                    1.0 + (0.08 if size == "XXL" else 0.0), cw[ci] * V.APPAREL_SIZE_WEIGHTS[si]))
        elif style == "footwear":
            color = ("Brown", "Black", "Wheat", "Dark Brown")[rng.integers(4)]
            for si, size in enumerate(V.BOOT_SIZES):
                options.append((f"{size} / {color}", f"{V.COLOR_CODES[color]}-{size}", 1.0, V.BOOT_SIZE_WEIGHTS[si]))
        elif style == "power":
            k = 2 if rng.random() < 0.6 else 1
            for i, (name, f) in enumerate(V.POWER_VARIANTS[:k]):
                options.append((name, ("BARE", "KIT")[i], f, (0.6, 0.4)[i] if k == 2 else 1.0))
        elif style == "single":
            options.append(("Default Title", "STD", 1.0, 1.0))
        elif style == "safety":
            group = V.SAFETY_VARIANTS[rng.integers(len(V.SAFETY_VARIANTS))]
            for name in group:
                options.append((name, V.COLOR_CODES.get(name, _slug(name).upper()[:4]), 1.0, 1.0 / len(group)))
        elif style == "packs":
            k = 1 + rng.integers(3)
            shares = (0.55, 0.3, 0.15)
            for i, (name, f) in enumerate(V.PACK_VARIANTS[:k]):
                options.append((name, name.split("-")[0], f, shares[i]))
        elif style == "battery":
            k = 1 + rng.integers(3)
            for i, (name, f) in enumerate(V.BATTERY_VARIANTS[:k]):
                options.append((name, name.replace(".", "").upper(), f, (0.45, 0.4, 0.15)[i]))
        else:  # accessory
            group = V.ACCESSORY_VARIANTS[rng.integers(len(V.ACCESSORY_VARIANTS))]
            for name in group:
                options.append((name, V.COLOR_CODES.get(name, _slug(name).upper()[:4]), 1.0, 1.0 / len(group)))
        total = sum(o[3] for o in options)
        for i, (name, suffix, f, share) in enumerate(options):
            v_product.append(p)
            v_title.append(name)
            v_sku.append(f"{code}-{suffix}")
            v_factor.append(f)
            v_share.append(share / total)
            v_position.append(i + 1)
    v_product_a = np.array(v_product, dtype=np.int64)
    v_factor_a = np.array(v_factor)
    v_price = _price(base[v_product_a] * v_factor_a)
    v_compare = np.where(has_compare[v_product_a], _price(v_price / 100 * compare_factor[v_product_a]), -1)
    cost_ratio = np.array([types[t]["cost"] for t in ptype])[v_product_a] * cost_noise[v_product_a]
    v_cost = np.round(v_price * cost_ratio).astype(np.int64)
    n_variants = len(v_product)
    sku_changed = rng.random(n_variants) < 0.03
    v_sku_changed_at = np.full(n_variants, -1, dtype=np.int64)
    v_old_sku: list[str | None] = [None] * n_variants
    for v in np.flatnonzero(sku_changed):
        p = v_product_a[v]
        lo_t = max(int(created_at[p]), start_us) + 60 * DAY_US
        hi_t = cal.as_of - 30 * DAY_US if discontinued_at[p] < 0 else int(discontinued_at[p])
        if hi_t > lo_t:
            v_sku_changed_at[v] = lo_t + int(rng.random() * (hi_t - lo_t))
            v_old_sku[v] = f"NW{p + 1:05d}{v_position[v]:02d}"

    # Monthly weights
    months = np.arange(n_months)[:, None]
    avail = (months >= launch_month[None, :]) & (months < disc_month[None, :])
    age = months - launch_month[None, :]
    ramp = np.where((launch_month[None, :] > 0) & (age >= 0), 1.0 + 1.2 * np.exp(-np.maximum(age, 0) / 2.0), 1.0)
    fade_start = n_months - 13 - rng.integers(0, 4, n_products)
    fade = np.where(fading[None, :] & (months >= fade_start[None, :]),
                    0.6 ** ((months - fade_start[None, :]) / 3.0), 1.0)
    markdown = avail & (months >= disc_month[None, :] - 3) & (disc_month[None, :] < n_months)
    clearance = np.where(markdown, 1.5, 1.0)
    moy = cal.month_of_year[cal.month_start_day] - 1  # month-of-year of each data month
    season = np.array([types[t]["season"] for t in ptype]).T[moy]  # (n_months, n_products)
    base_w = avail * ramp * fade * clearance * season
    weights = np.zeros((3, n_months, n_variants))
    for g, key in ((GROUP_DTC_WARM, "dtc"), (GROUP_DTC_COLD, "dtc"), (GROUP_B2B, "b2b")):
        share = np.array([t[key] for t in types])
        z_type = np.bincount(ptype, weights=popularity, minlength=N_TYPES)
        prod = share[ptype] * popularity / z_type[ptype]
        if g != GROUP_B2B:
            outer = np.array([t["name"] == "Outerwear" for t in types])[ptype]
            prod = prod * np.where(outer, 1.5 if g == GROUP_DTC_COLD else 0.45, 1.0)
        weights[g] = (base_w * prod[None, :])[:, v_product_a] * np.array(v_share)[None, :]
    return Catalog(
        title=titles, old_title=old_titles, renamed_at=renamed_at, handle=handles, ptype=ptype,
        vendor=vendors, collection=collections, created_at=created_at, discontinued_at=discontinued_at,
        launch_month=launch_month, disc_month=disc_month, fading=fading, popularity=popularity,
        v_product=v_product_a, v_title=v_title, v_sku=v_sku, v_old_sku=v_old_sku,
        v_sku_changed_at=v_sku_changed_at, v_price=v_price, v_compare_at=v_compare, v_cost=v_cost,
        v_position=np.array(v_position, dtype=np.int64), v_share=np.array(v_share),
        weights=weights, markdown=markdown, fade=fade,
    )


def sample_variants(rng: np.random.Generator, cat: Catalog, group: np.ndarray, month: np.ndarray) -> np.ndarray:
    """Draw one variant per line from the (group, month) popularity distribution."""
    n_months = cat.weights.shape[1]
    key = group * n_months + month
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    out = np.empty(len(key), dtype=np.int64)
    bounds = np.searchsorted(sorted_key, np.arange(3 * n_months + 1))
    u = rng.random(len(key))
    for k in range(3 * n_months):
        a, b = bounds[k], bounds[k + 1]
        if a == b:
            continue
        w = cat.weights[k // n_months, k % n_months]
        cdf = np.cumsum(w)
        idx = order[a:b]
        out[idx] = np.minimum(np.searchsorted(cdf, u[idx] * cdf[-1], side="right"), len(cdf) - 1)
    return out
