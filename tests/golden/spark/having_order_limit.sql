-- FROM sales SHOW net_sales, orders GROUP BY billing_region HAVING orders > 10 ORDER BY orders DESC LIMIT 5 OFFSET 5 SINCE -3m
WITH agg_0_0 AS (
  SELECT (sales.billing_region) AS `billing_region`,
    SUM(sales.net_sales) AS `m__net_sales`,
    COUNT(DISTINCT sales.order_id) FILTER (WHERE sales.event_type = 'order') AS `m__orders`,
    0 AS __level
  FROM `sales` AS sales
  WHERE sales.`happened_at` >= TIMESTAMP '2025-09-01T00:00:00-04:00' AND sales.`happened_at` < TIMESTAMP '2025-12-15T14:00:00.000001-05:00'
  GROUP BY (sales.billing_region)
),
lvl_0_rows AS (
  SELECT `billing_region`, `m__net_sales`, `m__orders` FROM agg_0_0 WHERE __level = 0
),
result AS (
  SELECT keys.`billing_region`,
    COALESCE(keys.`m__net_sales`, 0) AS `net_sales`,
    COALESCE(keys.`m__orders`, 0) AS `orders`
  FROM lvl_0_rows AS keys
)
SELECT `billing_region`, `net_sales`, `orders`, COUNT(*) OVER () AS __total_rows
  FROM result
  WHERE (`orders` > 10)
  ORDER BY `orders` DESC NULLS LAST, `billing_region` ASC NULLS LAST
  LIMIT 5 OFFSET 5;
