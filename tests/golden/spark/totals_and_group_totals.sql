-- FROM sales SHOW net_sales, average_order_value GROUP BY sales_channel, month WITH TOTALS, GROUP_TOTALS DURING last_quarter
WITH agg_0_0 AS (
  SELECT (sales.sales_channel) AS `sales_channel`,
    CAST(date_trunc('month', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE) AS `month`,
    SUM(sales.net_sales) AS `m__net_sales`,
    (SUM(sales.gross_sales + sales.discounts) FILTER (WHERE sales.event_type = 'order')) / NULLIF(COUNT(DISTINCT sales.order_id) FILTER (WHERE sales.event_type = 'order'), 0) AS `m__average_order_value`,
    grouping_id((sales.sales_channel), CAST(date_trunc('month', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE)) AS __level
  FROM `sales` AS sales
  WHERE sales.`happened_at` >= TIMESTAMP '2025-07-01T00:00:00-04:00' AND sales.`happened_at` < TIMESTAMP '2025-10-01T00:00:00-04:00'
  GROUP BY GROUPING SETS (((sales.sales_channel), CAST(date_trunc('month', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE)), (), ((sales.sales_channel)), (CAST(date_trunc('month', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE)))
),
lvl_0_rows AS (
  SELECT `sales_channel`, `month`, `m__net_sales`, `m__average_order_value` FROM agg_0_0 WHERE __level = 0
),
lvl_0_totals AS (
  SELECT `m__net_sales`, `m__average_order_value` FROM agg_0_0 WHERE __level = 3
),
lvl_0_group_0 AS (
  SELECT `sales_channel`, `m__net_sales`, `m__average_order_value` FROM agg_0_0 WHERE __level = 1
),
lvl_0_group_1 AS (
  SELECT `month`, `m__net_sales`, `m__average_order_value` FROM agg_0_0 WHERE __level = 2
),
result AS (
  SELECT keys.`sales_channel`,
    keys.`month`,
    COALESCE(keys.`m__net_sales`, 0) AS `net_sales`,
    keys.`m__average_order_value` AS `average_order_value`,
    COALESCE(tot.`m__net_sales`, 0) AS `net_sales__totals`,
    tot.`m__average_order_value` AS `average_order_value__totals`,
    g0.`m__net_sales` AS `net_sales__sales_channel_totals`,
    g0.`m__average_order_value` AS `average_order_value__sales_channel_totals`,
    g1.`m__net_sales` AS `net_sales__month_totals`,
    g1.`m__average_order_value` AS `average_order_value__month_totals`
  FROM lvl_0_rows AS keys
  CROSS JOIN lvl_0_totals AS tot
  LEFT JOIN lvl_0_group_0 AS g0 ON g0.`sales_channel` IS NOT DISTINCT FROM keys.`sales_channel`
  LEFT JOIN lvl_0_group_1 AS g1 ON g1.`month` IS NOT DISTINCT FROM keys.`month`
)
SELECT `sales_channel`, `month`, `net_sales`, `average_order_value`, `net_sales__totals`, `average_order_value__totals`, `net_sales__sales_channel_totals`, `average_order_value__sales_channel_totals`, `net_sales__month_totals`, `average_order_value__month_totals`, COUNT(*) OVER () AS __total_rows
  FROM result
  ORDER BY `month` ASC, `net_sales` DESC NULLS LAST, `sales_channel` ASC NULLS LAST
  LIMIT 1000;
