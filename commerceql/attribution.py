"""Marketing attribution: which channel gets the credit for an order (`WITH ..._ATTRIBUTION`).

ShopifyQL 2026-04's attribution modifiers add, per metric, a column named `{metric}__{model}`
(`net_sales__last_non_direct_click`): the metric with every order credited to the channel the model
picks from the visits that led to it, instead of the referrer of the visit that placed it.

The touchpoints of an order are its buyer's visits (`sessions`, same `visitor_id`) that started in
the 30 days (LOOKBACK_HOURS) up to and including the visit that placed the order (the session
whose `order_id` is the order). An order no session placed (point of sale, draft orders,
wholesale entered by staff, imports without sessions) has no touchpoints and is credited to no
channel (NULL), as its own referrer is NULL. The models:

    FIRST_CLICK_ATTRIBUTION          the first touchpoint
    LAST_CLICK_ATTRIBUTION           the visit that placed the order (= the order's own referrer)
    LAST_NON_DIRECT_CLICK_ATTRIBUTION  the last touchpoint that is not Direct; Direct only when
                                     every touchpoint was Direct
    ANY_CLICK_ATTRIBUTION            every channel among the touchpoints, each with full credit
                                     (so the channels' figures add up to more than the metric)
    LINEAR_ATTRIBUTION               refused: it splits an order's value across touchpoints,
                                     and CommerceQL's metrics (distinct counts, ratios) do not split

The compiler answers an attribution column like a comparison over the same period: the query's
rows are aggregated a second time with the channel dimensions read from the credited touchpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from commerceql.dialect import Dialect

#: Visits up to this long before the order count as its touchpoints (30 days of UTC hours).
LOOKBACK_HOURS = 720
#: The table attribution credits (its rows carry the order) and the visits it reads.
ATTRIBUTED_TABLE = "sales"
SESSIONS_RELATION = "sessions"
#: The dimensions of `sales` that name the order's channel, and the touchpoint column each reads
#: under an attribution model.
CHANNEL_DIMENSIONS: dict[str, str] = {
    "order_referrer_source": "referrer_source",
    "order_referrer_name": "referrer_source",
    "referrer_source": "referrer_source",
    "referring_channel": "referring_channel",
}


@dataclass(frozen=True)
class AttributionModel:
    modifier: str  # LAST_NON_DIRECT_CLICK_ATTRIBUTION
    suffix: str  # last_non_direct_click: the generated column is {metric}__{suffix}
    label: str  # last non-direct click (headers: "Net sales (last non-direct click)")
    description: str


MODELS: dict[str, AttributionModel] = {
    model.modifier: model
    for model in (
        AttributionModel("FIRST_CLICK_ATTRIBUTION", "first_click", "first click",
                         "credited to the channel of the buyer's first visit in the 30 days before the order"),
        AttributionModel("LAST_CLICK_ATTRIBUTION", "last_click", "last click",
                         "credited to the channel of the visit that placed the order"),
        AttributionModel("LAST_NON_DIRECT_CLICK_ATTRIBUTION", "last_non_direct_click", "last non-direct click",
                         "credited to the channel of the buyer's last visit in the 30 days before the order "
                         "that was not Direct (Direct only when every visit was)"),
        AttributionModel("ANY_CLICK_ATTRIBUTION", "any_click", "any click",
                         "credited in full to every channel the buyer visited from in the 30 days before "
                         "the order (channels add up to more than the total)"),
    )
}
#: Modifiers ShopifyQL has that CommerceQL refuses, with the reason.
REFUSED_MODELS: dict[str, str] = {
    "LINEAR_ATTRIBUTION": (
        "LINEAR_ATTRIBUTION splits each order's value evenly across its visits' channels, and "
        "CommerceQL does not split metrics (a distinct count or a ratio has no share per visit)"
    ),
}
SUFFIXES = frozenset(model.suffix for model in MODELS.values())


def touchpoints_sql(model: AttributionModel, dialect: Dialect, sessions: str) -> str:
    """One row per (order, credited touchpoint): order_id, referrer_source, referring_channel.

    `sessions` is the sessions relation as the compiler writes it. Ties in time are broken by
    session_id so the answer never depends on the engine's row order."""
    start = dialect.add_instant("placed.started_at", "hour", str(-LOOKBACK_HOURS))
    touches = (
        "SELECT placed.order_id, visit.session_id, visit.started_at, visit.referrer_source, visit.referring_channel, "
        "(visit.referring_channel = 'Direct' OR visit.referrer_source = 'direct') AS is_direct, "
        "visit.session_id = placed.session_id AS is_placing\n"
        f"    FROM (SELECT order_id, session_id, visitor_id, started_at FROM (SELECT order_id, session_id, visitor_id, "
        f"started_at, "
        f"ROW_NUMBER() OVER (PARTITION BY order_id ORDER BY started_at DESC, session_id DESC) AS __n "
        f"FROM {sessions} WHERE order_id IS NOT NULL) AS conversions WHERE __n = 1) AS placed\n"
        f"    JOIN {sessions} AS visit ON visit.visitor_id = placed.visitor_id "
        f"AND visit.started_at <= placed.started_at AND visit.started_at > {start}"
    )
    if model.suffix == "any_click":
        return (f"SELECT DISTINCT order_id, referrer_source, referring_channel FROM ({touches}) AS touches")
    order = {
        "first_click": "started_at ASC, session_id ASC",
        "last_click": "CASE WHEN is_placing THEN 0 ELSE 1 END ASC, started_at DESC, session_id DESC",
        # non-direct visits first, then the latest of them
        "last_non_direct_click": "CASE WHEN is_direct THEN 1 ELSE 0 END ASC, started_at DESC, session_id DESC",
    }[model.suffix]
    return (
        "SELECT order_id, referrer_source, referring_channel FROM (SELECT order_id, referrer_source, "
        f"referring_channel, ROW_NUMBER() OVER (PARTITION BY order_id ORDER BY {order}) AS __n "
        f"FROM ({touches}) AS touches) AS ranked WHERE __n = 1"
    )
