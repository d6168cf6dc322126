"""The explore widget sends compact updates: only the pieces that changed, nothing for a view shown before.

Driven like the browser drives it (setting control values); what the widget sends to the page is
recorded at ipywidgets' `Widget._send` (the comm message of a state change). The numbers shown are
compared with Polars over the store's raw Parquet files, not with the compiler.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import ipywidgets
import polars as pl
import pytest
from rawdata import raw

import commerceql as cql
from commerceql.charts import SUPPORTED_CHART_TYPES
from commerceql.display import comparison_phrase, humanize
from commerceql.widgets import COMPARISONS, VIEW_CACHE_SIZE, ExploreWidget, measure_latency

NOTEBOOK_QUERY = "FROM sales SHOW net_sales GROUP BY sales_channel DURING last_month VISUALIZE net_sales TYPE bar"


@pytest.fixture(scope="module")
def store(sample_store_path: Path) -> Iterator[cql.Store]:
    with cql.connect(sample_store_path) as opened:
        yield opened


# ---------------------------------------------------------------------------------------------
# Oracles: Polars over the raw files
# ---------------------------------------------------------------------------------------------


def _local_as_of(path: Path) -> tuple[dt.datetime, str]:
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    timezone = manifest["timezone"]
    as_of = dt.datetime.fromisoformat(manifest["as_of"]).astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
    return as_of, timezone


def _last_month(as_of: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    this_month = dt.datetime(as_of.year, as_of.month, 1)
    previous = dt.datetime(this_month.year - 1, 12, 1) if this_month.month == 1 else dt.datetime(this_month.year, this_month.month - 1, 1)
    return previous, this_month


def net_sales_by(path: Path, dimension: str) -> dict[str | None, float]:
    """SUM(net_sales) per `dimension` over last month (store time zone, the manifest's as_of)."""
    as_of, timezone = _local_as_of(path)
    start, end = _last_month(as_of)
    local = pl.col("happened_at").dt.convert_time_zone(timezone).dt.replace_time_zone(None)
    frame = (
        raw(path, "sales")
        .filter((local >= start) & (local < end))
        .group_by(dimension)
        .agg(pl.col("net_sales").sum())
    )
    return dict(zip(frame[dimension].to_list(), [float(v) for v in frame["net_sales"].to_list()], strict=True))


def shown_by(widget: ExploreWidget, dimension: str) -> dict[str | None, float]:
    assert widget.result is not None
    totals = [float(value) for value in widget.result.df["net_sales"].to_list()]
    return dict(zip(widget.result.df[dimension].to_list(), totals, strict=True))


def assert_same_totals(shown: dict[str | None, float], expected: dict[str | None, float]) -> None:
    assert set(shown) == set(expected)
    for key, value in expected.items():
        assert shown[key] == pytest.approx(value, abs=0.005), key


# ---------------------------------------------------------------------------------------------
# Recording what goes to the page
# ---------------------------------------------------------------------------------------------


class Sent:
    """The state-change messages widgets send (which widget, which keys, how many bytes)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.messages: list[tuple[ipywidgets.Widget, tuple[str, ...], int]] = []
        original = ipywidgets.Widget._send
        sent = self

        def record(widget: ipywidgets.Widget, msg: dict, buffers=None) -> None:  # type: ignore[no-untyped-def]
            if msg.get("method") == "update":
                size = len(json.dumps(msg["state"], default=str))
                sent.messages.append((widget, tuple(msg["state"]), size))
            return original(widget, msg, buffers)

        monkeypatch.setattr(ipywidgets.Widget, "_send", record)

    def clear(self) -> None:
        self.messages.clear()

    def widgets(self) -> list[ipywidgets.Widget]:
        return [widget for widget, _, _ in self.messages]

    def keys_of(self, widget: ipywidgets.Widget) -> set[str]:
        return {key for sent, keys, _ in self.messages if sent is widget for key in keys}

    def bytes(self) -> int:
        return sum(size for _, _, size in self.messages)


class EngineSpy:
    """The statements the store's engine runs."""

    def __init__(self, store: cql.Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.statements: list[str] = []
        original = store.engine.run

        def run(sql, parameters=None):  # type: ignore[no-untyped-def]
            self.statements.append(sql)
            return original(sql, parameters)

        monkeypatch.setattr(store.engine, "run", run)


# ---------------------------------------------------------------------------------------------
# Compact updates
# ---------------------------------------------------------------------------------------------


def test_a_chart_type_change_sends_the_chart_and_the_status_but_not_the_table(store, monkeypatch):
    widget = store.explore(NOTEBOOK_QUERY)
    sent = Sent(monkeypatch)
    spy = EngineSpy(store, monkeypatch)
    table_before, table_updates = widget.w_table.value, widget.table_updates
    widget.controls["chart_type"].value = "line"
    assert spy.statements == [] and widget.error is None
    assert widget.w_table not in sent.widgets()  # the rows are those shown: the table stays
    assert widget.w_table.value is table_before and widget.table_updates == table_updates
    assert sent.keys_of(widget.w_chart) == {"outputs"}
    assert "value" in sent.keys_of(widget.w_status)
    assert f'data-revision="{widget.revision}"' in widget.w_status.value
    # the chart went out last: the page shows table and status while it draws the new chart
    assert sent.messages[-1][0] is widget.w_chart
    assert widget.vegalite_spec == store.query(widget.query_text).vegalite_spec
    assert '"line"' in json.dumps(widget.vegalite_spec)
    widget.close()


def test_a_chart_that_stays_the_same_is_not_sent_again(store, monkeypatch, sample_store_path):
    widget = store.explore(NOTEBOOK_QUERY)
    widget.update(chart_type=None)  # no chart: its output is empty, and stays empty
    assert widget.w_chart.outputs == ()
    sent = Sent(monkeypatch)
    chart_updates = widget.chart_updates
    widget.controls["dimension"].value = "billing_region"
    assert widget.w_chart not in sent.widgets() and widget.chart_updates == chart_updates
    assert widget.w_table in sent.widgets()
    assert_same_totals(shown_by(widget, "billing_region"), net_sales_by(sample_store_path, "billing_region"))
    assert "billing_region" in widget.w_table.value
    widget.close()


def test_toggling_back_runs_and_draws_nothing(store, monkeypatch, sample_store_path):
    widget = store.explore(NOTEBOOK_QUERY)
    first_table, (first_chart,) = widget.w_table.value, widget.w_chart.outputs
    widget.controls["dimension"].value = "billing_region"
    assert_same_totals(shown_by(widget, "billing_region"), net_sales_by(sample_store_path, "billing_region"))

    spy = EngineSpy(store, monkeypatch)
    reused = widget.views_reused
    widget.controls["dimension"].value = "sales_channel"  # back to the notebook's query
    assert spy.statements == [] and widget.views_reused == reused + 1
    assert_same_totals(shown_by(widget, "sales_channel"), net_sales_by(sample_store_path, "sales_channel"))
    (chart,) = widget.w_chart.outputs
    assert chart == first_chart
    # the same table as at first, under a newer table revision (the page replaced it)
    assert widget.w_table.value.split(">", 1)[1] == first_table.split(">", 1)[1]
    assert widget.table_revision > 1

    widget.controls["dimension"].value = "billing_region"  # and forth again
    assert spy.statements == [] and widget.views_reused == reused + 2
    assert_same_totals(shown_by(widget, "billing_region"), net_sales_by(sample_store_path, "billing_region"))
    assert "GROUP BY billing_region" in widget.query_text and widget.w_query.value == widget.query_text
    widget.close()


def test_the_kept_views_are_few_and_the_oldest_runs_again(store, monkeypatch):
    widget = store.explore(NOTEBOOK_QUERY)
    ranges = [
        value for _, value in widget.w_date_range.options if value not in ("all_time", "custom", "as_written", "last_month")
    ]
    assert len(ranges) > VIEW_CACHE_SIZE + 1
    for value in ranges[: VIEW_CACHE_SIZE + 1]:
        widget.controls["date_range"].value = value
        assert widget.error is None, widget.error
    assert len(widget._views) == VIEW_CACHE_SIZE
    spy = EngineSpy(store, monkeypatch)
    widget.controls["date_range"].value = ranges[VIEW_CACHE_SIZE - 1]  # kept
    assert spy.statements == []
    widget.controls["date_range"].value = "last_month"  # the notebook's view: the oldest, dropped
    assert len(spy.statements) == 1
    widget.close()
    assert len(widget._views) == 0


def test_a_new_day_is_another_view(store, monkeypatch, sample_store_path):
    """The views are kept by statement and parameters: "last month" resolved on another day runs again."""
    widget = store.explore(NOTEBOOK_QUERY)
    widget.controls["dimension"].value = "billing_region"
    later = store.now() + dt.timedelta(days=40)
    monkeypatch.setattr(store, "now", lambda: later)
    spy = EngineSpy(store, monkeypatch)
    widget.controls["dimension"].value = "sales_channel"
    assert len(spy.statements) == 1
    widget.close()


def test_the_kernel_side_update_is_measured(store):
    widget = store.explore(NOTEBOOK_QUERY)
    widget.controls["chart_type"].value = "line"
    widget.controls["chart_type"].value = "bar"  # a view kept
    assert len(widget.timings) == 2 and all(seconds >= 0 for seconds in widget.timings)
    assert " ms</span>" in widget.w_status.value
    widget.close()


# ---------------------------------------------------------------------------------------------
# Labels of the Compare to and Chart dropdowns
# ---------------------------------------------------------------------------------------------


def test_compare_to_and_chart_dropdowns_show_labels_and_keep_their_values(store, sample_store_path):
    widget = store.explore(NOTEBOOK_QUERY)
    comparison_labels = {value: label for label, value in widget.w_comparison.options}
    assert list(comparison_labels) == ["", *COMPARISONS]  # values unchanged: saved states still work
    for operator in COMPARISONS:
        phrase = comparison_phrase(operator)  # the words of the table headers ("previous year")
        assert comparison_labels[operator] == phrase[:1].upper() + phrase[1:]
    assert comparison_labels["previous_year"] == "Previous year"
    chart_labels = {value: label for label, value in widget.w_chart_type.options}
    assert set(SUPPORTED_CHART_TYPES) <= set(chart_labels)
    assert chart_labels["horizontal_bar"] == humanize("horizontal_bar") == "Horizontal bar"
    assert all("_" not in label for label in chart_labels.values())

    widget.controls["comparison"].value = "previous_year"  # set by value, as a saved state does
    assert "COMPARE TO previous_year" in widget.query_text
    headers = widget.w_table.value
    assert f"Net sales ({comparison_phrase('previous_year')})" in headers
    assert_same_totals(shown_by(widget, "sales_channel"), net_sales_by(sample_store_path, "sales_channel"))
    widget.close()


def test_measure_latency_says_what_each_update_sent(store):
    changes = (("dimension", "billing_region"), ("chart_type", "line"), ("chart_type", "bar"), ("dimension", "sales_channel"))
    report = measure_latency(store, changes=changes)
    pieces = [update["pieces"] for update in report["updates"]]
    assert pieces == [("table", "chart"), ("chart",), ("chart",), ("table", "chart")]
    assert [update["queried"] for update in report["updates"]] == [True, False, False, False]
    # back to the bar chart by region: kept; back to the notebook's view: kept
    assert [update["reused"] for update in report["updates"]] == [False, False, True, True]
    assert report["reused"] == 2 and report["queried"] == 1
    assert all(update["size"] > 0 for update in report["updates"])
