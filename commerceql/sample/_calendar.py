"""The store calendar: local days in America/New_York, seasonality, and time warps.

Instants are int64 microseconds since the Unix epoch (UTC). Seasonality is defined on local days
and local hours; sampling happens on an hourly UTC grid whose weights come from the local clock,
so daylight-saving changes are handled by construction.

A *warp* turns uniform draws into instants whose density follows a weight curve: the cumulative
weight over the hourly grid is inverted with `searchsorted`, then a linear position inside the hour.
Two curves are used: *acquisition* (seasonality × growth: when new customers arrive) and *seasonal*
(seasonality only, normalised to one unit per day: the clock that repeat-purchase cadences tick in,
so that BFCM and December compress the gaps between a customer's orders).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

TIMEZONE = "America/New_York"
US = 1_000_000
HOUR_US = 3600 * US
DAY_US = 86400 * US

# Relative demand by local hour (DTC online)
HOURLY_ONLINE = np.array(
    [0.30, 0.18, 0.11, 0.08, 0.08, 0.12, 0.28, 0.52, 0.78, 0.95, 1.05, 1.12,
     1.20, 1.15, 1.08, 1.06, 1.08, 1.14, 1.25, 1.40, 1.52, 1.48, 1.10, 0.62]
)
# Monday=0 .. Sunday=6
WEEKLY_ONLINE = np.array([1.06, 1.02, 1.0, 0.97, 0.90, 0.86, 1.08])
# Mid-month anchors of the yearly curve (Jan..Dec), interpolated per day
YEARLY_ONLINE = np.array([0.82, 0.80, 0.92, 1.00, 1.05, 1.02, 0.95, 0.96, 0.98, 1.04, 1.10, 1.22])
# Flagship store (POS) and business (B2B) hours, local
HOURLY_POS = np.array([0] * 10 + [0.7, 0.9, 1.1, 1.2, 1.1, 1.0, 1.0, 1.1, 1.0, 0.7] + [0] * 4, dtype=float)
HOURLY_B2B = np.array([0] * 7 + [0.4, 1.0, 1.3, 1.35, 1.1, 0.8, 1.1, 1.25, 1.1, 0.8, 0.3] + [0] * 6, dtype=float)


def thanksgiving(year: int) -> dt.date:
    first = dt.date(year, 11, 1)
    first_thursday = 1 + (3 - first.weekday()) % 7
    return dt.date(year, 11, first_thursday + 21)


def black_friday(year: int) -> dt.date:
    return thanksgiving(year) + dt.timedelta(days=1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    first = dt.date(year, month, 1)
    day = 1 + (weekday - first.weekday()) % 7 + 7 * (n - 1)
    return dt.date(year, month, day)


def _last_weekday(year: int, month: int, weekday: int) -> dt.date:
    nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


@dataclass
class Warp:
    """Inverse-CDF sampler over the hourly grid."""

    cum: np.ndarray  # cumulative weight at each bin start, len H+1
    bin_start: np.ndarray  # UTC us of each bin start
    bin_len: np.ndarray  # length of each bin in us (last bin may be partial)

    @property
    def total(self) -> float:
        return float(self.cum[-1])

    def at(self, t_us: np.ndarray) -> np.ndarray:
        """Cumulative weight at instants (inverse of `time`)."""
        h = np.clip(np.searchsorted(self.bin_start, t_us, side="right") - 1, 0, len(self.bin_start) - 1)
        frac = (t_us - self.bin_start[h]) / self.bin_len[h]
        return self.cum[h] + frac * (self.cum[h + 1] - self.cum[h])

    def time(self, x: np.ndarray) -> np.ndarray:
        """Instants at cumulative weights x (0 <= x < total)."""
        h = np.clip(np.searchsorted(self.cum, x, side="right") - 1, 0, len(self.bin_start) - 1)
        width = self.cum[h + 1] - self.cum[h]
        frac = np.where(width > 0, (x - self.cum[h]) / np.where(width > 0, width, 1.0), 0.5)
        t = self.bin_start[h] + (np.clip(frac, 0.0, 0.999999) * self.bin_len[h]).astype(np.int64)
        return t

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n instants in random order."""
        return self.time(rng.random(n) * self.total)

    def sample_sorted(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n instants in increasing order (for very large n: no search, no sort).

        Counts per hour come from one multinomial draw; inside an hour the instants are uniform
        order statistics, made from normalised cumulative sums of exponential spacings.
        """
        w = np.diff(self.cum)
        counts = rng.multinomial(n, w / w.sum())
        e = rng.standard_exponential(n)
        cs = np.cumsum(e)
        del e
        ends = np.cumsum(counts)
        csz = np.concatenate([[0.0], cs])
        before = csz[ends - counts]
        total = csz[ends] - before + rng.standard_exponential(len(counts))
        del csz
        scale = self.bin_len / total
        cs *= np.repeat(scale, counts)
        cs += np.repeat(self.bin_start - before * scale, counts)
        return cs.astype(np.int64)


class Calendar:
    def __init__(self, start: dt.date, as_of_utc_us: int, rng: np.random.Generator) -> None:
        self.start = start
        self.as_of = int(as_of_utc_us)
        as_of_local = (
            pl.Series([self.as_of]).cast(pl.Datetime("us", "UTC")).dt.convert_time_zone(TIMEZONE).dt.date()[0]
        )
        self.n_days = (as_of_local - start).days + 1
        self.dates = np.datetime64(start.isoformat(), "D") + np.arange(self.n_days)
        local_midnight = self.dates.astype("datetime64[us]").astype(np.int64)
        self.day_start = _local_to_utc(local_midnight)  # UTC us of each local midnight
        self.day_start_ext = np.append(self.day_start, _local_to_utc(local_midnight[-1:] + DAY_US))
        noon = local_midnight + 12 * HOUR_US
        self.noon_offset = noon - _local_to_utc(noon)  # local - UTC at local noon
        self.local_midnight_naive = local_midnight
        days_int = self.dates.astype(np.int64)
        self.weekday = (days_int + 3) % 7  # Monday=0
        months = self.dates.astype("datetime64[M]").astype(np.int64)
        self.month_of_year = months % 12 + 1
        self.year = months // 12 + 1970
        self.month_index = months - months[0]  # 0 = first month of the data
        self.n_months = int(self.month_index[-1]) + 1
        self.month_start_day = np.searchsorted(self.month_index, np.arange(self.n_months))
        self.day_of_month = (self.dates - self.dates.astype("datetime64[M]")).astype(np.int64) + 1
        self.years_since_start = np.arange(self.n_days) / 365.25
        self._build_daily(rng)
        self._build_grid()

    # ---- daily curves -------------------------------------------------------------------
    def _build_daily(self, rng: np.random.Generator) -> None:
        doy = (self.dates - self.dates.astype("datetime64[Y]")).astype(np.int64)
        anchors = (np.arange(12) + 0.5) * 365.25 / 12
        xs = np.concatenate([anchors - 365.25, anchors, anchors + 365.25])
        ys = np.tile(YEARLY_ONLINE, 3)
        yearly = np.interp(doy, xs, ys)
        events = np.ones(self.n_days)
        self.bfcm_days = np.zeros(self.n_days, dtype=bool)  # BFCM25 campaign window
        self.spring_days = np.zeros(self.n_days, dtype=bool)
        self.summer_days = np.zeros(self.n_days, dtype=bool)
        business = self.weekday < 5
        index = {d: i for i, d in enumerate(self.dates.astype(object))}

        def mark(day: dt.date, factor: float | None = None, flag: np.ndarray | None = None,
                 closed: bool = False) -> None:
            i = index.get(day)
            if i is None:
                return
            if factor is not None:
                events[i] *= factor
            if flag is not None:
                flag[i] = True
            if closed:
                business[i] = False

        for year in sorted(set(self.year.tolist())):
            tg = thanksgiving(year)
            for offset, factor in ((-3, 1.6), (-2, 1.7), (-1, 1.9), (0, 2.2), (1, 5.5), (2, 3.8),
                                   (3, 2.8), (4, 4.4), (5, 1.7), (6, 1.3)):
                mark(tg + dt.timedelta(days=offset), factor,
                     self.bfcm_days if -1 <= offset <= 5 else None, closed=offset in (0, 1))
            for d in range(20, 32):
                mark(dt.date(year, 3, d), 1.18, self.spring_days)
            for d in range(1, 6):
                mark(dt.date(year, 4, d), 1.18, self.spring_days)
            for d in range(8, 15):
                mark(dt.date(year, 7, d), 1.3, self.summer_days)
            fathers = _nth_weekday(year, 6, 6, 3)
            for d in range(-7, 0):
                mark(fathers + dt.timedelta(days=d), 1.15)
            labor = _nth_weekday(year, 9, 0, 1)
            for d in range(-2, 1):
                mark(labor + dt.timedelta(days=d), 1.2)
            for day, factor in ((24, 0.6), (25, 0.45), (26, 1.1), (31, 0.8)):
                mark(dt.date(year, 12, day), factor, closed=True)
            mark(dt.date(year, 1, 1), 0.7, closed=True)
            mark(dt.date(year, 7, 4), 0.85, closed=True)
            mark(_last_weekday(year, 5, 0), 1.1, closed=True)
            mark(labor, None, closed=True)
        noise = np.exp(rng.normal(0.0, 0.07, self.n_days))
        self.daily_online = yearly * WEEKLY_ONLINE[self.weekday] * events * noise
        self.daily_pos = yearly * np.array([0.9, 0.9, 0.95, 1.0, 1.15, 1.5, 1.0])[self.weekday] * np.sqrt(events)
        self.business_day = business
        self.holiday = ~business & (self.weekday < 5)
        # weekends next to a holiday (Thanksgiving's, a Monday holiday's): buyers order ahead
        n, idx = self.n_days, np.arange(self.n_days)
        friday = np.where(self.weekday == 5, idx - 1, idx - 2)
        monday = np.where(self.weekday == 5, idx + 2, idx + 1)
        self.long_weekend = (self.weekday >= 5) & (
            self.holiday[np.clip(friday, 0, n - 1)] & (friday >= 0)
            | self.holiday[np.clip(monday, 0, n - 1)] & (monday < n))
        # next business day on or after each day, previous one on or before (-1 when none)
        nxt = np.where(business, np.arange(self.n_days), self.n_days)
        nxt = np.minimum.accumulate(nxt[::-1])[::-1]
        self.next_business_day = np.where(nxt >= self.n_days, -1, nxt)
        self.prev_business_day = np.maximum.accumulate(np.where(business, np.arange(self.n_days), -1))

    # ---- hourly grid --------------------------------------------------------------------
    def _build_grid(self) -> None:
        start = int(self.day_start[0])
        n_bins = int(-(-(self.as_of - start) // HOUR_US))
        self.bin_start = start + np.arange(n_bins, dtype=np.int64) * HOUR_US
        self.bin_len = np.minimum(HOUR_US, self.as_of - self.bin_start).astype(np.float64)
        local = self.bin_start + self._offset_of(self.bin_start)
        self.bin_local_hour = ((local // HOUR_US) % 24).astype(np.int64)
        self.bin_day = self.day_of(self.bin_start)

    def _offset_of(self, t_us: np.ndarray) -> np.ndarray:
        s = pl.Series(t_us).cast(pl.Datetime("us", "UTC")).dt.convert_time_zone(TIMEZONE)
        naive = s.dt.replace_time_zone(None).cast(pl.Int64).to_numpy()
        return naive - t_us

    def warp(self, daily: np.ndarray, hourly: np.ndarray, growth_rate: float = 0.0,
             normalise_per_day: bool = False) -> Warp:
        d = self.bin_day
        w = daily[d] * hourly[self.bin_local_hour] * (self.bin_len / HOUR_US)
        if growth_rate:
            w = w * np.exp(growth_rate * self.years_since_start[d])
        cum = np.concatenate([[0.0], np.cumsum(w)])
        if normalise_per_day:
            cum *= (self.as_of - self.day_start[0]) / DAY_US / cum[-1]
        return Warp(cum=cum, bin_start=self.bin_start, bin_len=self.bin_len)

    # ---- conversions --------------------------------------------------------------------
    def day_of(self, t_us: np.ndarray) -> np.ndarray:
        """Local day index of UTC instants."""
        return np.clip(np.searchsorted(self.day_start_ext, t_us, side="right") - 1, 0, self.n_days - 1)

    def month_of(self, t_us: np.ndarray) -> np.ndarray:
        return self.month_index[self.day_of(t_us)]

    def at_local(self, day: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        """UTC instants of local day `day` at `seconds` after midnight (valid from 03:00 on)."""
        return self.local_midnight_naive[day] + (seconds * US).astype(np.int64) - self.noon_offset[day]

    def retime(self, rng: np.random.Generator, t_us: np.ndarray, hourly: np.ndarray,
               business_only: bool = False) -> np.ndarray:
        """Move instants to their local day's opening hours.

        With `business_only`, weekend instants move to the Friday before or the Monday after (at
        random) and holiday ones, and those of a weekend next to a holiday, to the business day
        before (buyers order ahead of a holiday).
        """
        day = self.day_of(t_us)
        if business_only:
            before = self.holiday[day] | self.long_weekend[day] | (rng.random(len(day)) < 0.5)
            prev = self.prev_business_day[day]
            day = np.where(before & (prev >= 0), prev, self.next_business_day[day])
        p = hourly / hourly.sum()
        hour = rng.choice(24, size=len(t_us), p=p)
        seconds = hour * 3600 + rng.random(len(t_us)) * 3600
        out = np.where(day >= 0, self.at_local(np.maximum(day, 0), seconds), -1)
        # past the end of the data (the last days): the opening hours of the day before instead
        late = (day < 0) | (out > self.as_of)
        if late.any():
            before = np.maximum(self.day_of(t_us[late]) - 1, 0)
            if business_only:
                before = self.prev_business_day[before]
            alt = self.at_local(np.maximum(before, 0), seconds[late])
            out[late] = np.where((before >= 0) & (alt <= self.as_of), alt, -1)
        return out


def _local_to_utc(naive_us: np.ndarray) -> np.ndarray:
    s = (
        pl.Series(naive_us)
        .cast(pl.Datetime("us"))
        .dt.replace_time_zone(TIMEZONE, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
        .cast(pl.Int64)
    )
    return s.to_numpy()
