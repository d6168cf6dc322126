-- FROM sales SHOW net_sales, orders GROUP BY sales_channel DURING last_month
WITH agg_0_0 AS (
  SELECT (sales.sales_channel) AS `sales_channel`,
    SUM(sales.net_sales) AS `m__net_sales`,
    COUNT(DISTINCT sales.order_id) FILTER (WHERE sales.event_type = 'order') AS `m__orders`,
    0 AS __level
  FROM `sales` AS sales
  WHERE sales.`happened_at` >= TIMESTAMP '2025-11-01T00:00:00-04:00' AND sales.`happened_at` < TIMESTAMP '2025-12-01T00:00:00-05:00'
  GROUP BY (sales.sales_channel)
),
lvl_0_rows AS (
  SELECT `sales_channel`, `m__net_sales`, `m__orders` FROM agg_0_0 WHERE __level = 0
),
result AS (
  SELECT keys.`sales_channel`,
    COALESCE(keys.`m__net_sales`, 0) AS `net_sales`,
    COALESCE(keys.`m__orders`, 0) AS `orders`
  FROM lvl_0_rows AS keys
)
SELECT `sales_channel`, `net_sales`, `orders`, COUNT(*) OVER () AS __total_rows
  FROM result
  ORDER BY `net_sales` DESC NULLS LAST, `sales_channel` ASC NULLS LAST
  LIMIT 1000;
