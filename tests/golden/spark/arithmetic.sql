-- FROM sales SHOW (net_sales + shipping_charges) / orders AS "Revenue per order" GROUP BY month DURING last_year
WITH agg_0_0 AS (
  SELECT CAST(date_trunc('month', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE) AS `month`,
    SUM(sales.net_sales) AS `m__net_sales`,
    SUM(sales.shipping_charges) AS `m__shipping_charges`,
    COUNT(DISTINCT sales.order_id) FILTER (WHERE sales.event_type = 'order') AS `m__orders`,
    0 AS __level
  FROM `sales` AS sales
  WHERE sales.`happened_at` >= TIMESTAMP '2024-01-01T00:00:00-05:00' AND sales.`happened_at` < TIMESTAMP '2025-01-01T00:00:00-05:00'
  GROUP BY CAST(date_trunc('month', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE)
),
lvl_0_rows AS (
  SELECT `month`, `m__net_sales`, `m__shipping_charges`, `m__orders` FROM agg_0_0 WHERE __level = 0
),
result AS (
  SELECT keys.`month`,
    (CAST((COALESCE(keys.`m__net_sales`, 0) + COALESCE(keys.`m__shipping_charges`, 0)) AS DOUBLE) / NULLIF(COALESCE(keys.`m__orders`, 0), 0)) AS `Revenue per order`
  FROM lvl_0_rows AS keys
)
SELECT `month`, `Revenue per order`, COUNT(*) OVER () AS __total_rows
  FROM result
  ORDER BY `month` ASC, `Revenue per order` DESC NULLS LAST
  LIMIT 1000;
