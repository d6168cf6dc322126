-- FROM sales SHOW net_sales, rank(net_sales) GROUP BY sales_channel, billing_region DURING last_year
WITH agg_0_0 AS (
  SELECT (sales.sales_channel) AS `sales_channel`,
    (sales.billing_region) AS `billing_region`,
    SUM(sales.net_sales) AS `m__net_sales`,
    0 AS __level
  FROM `sales` AS sales
  WHERE sales.`happened_at` >= TIMESTAMP '2024-01-01T00:00:00-05:00' AND sales.`happened_at` < TIMESTAMP '2025-01-01T00:00:00-05:00'
  GROUP BY (sales.sales_channel), (sales.billing_region)
),
lvl_0_rows AS (
  SELECT `sales_channel`, `billing_region`, `m__net_sales` FROM agg_0_0 WHERE __level = 0
),
result AS (
  SELECT keys.`sales_channel`,
    keys.`billing_region`,
    COALESCE(keys.`m__net_sales`, 0) AS __rank_input_0,
    COALESCE(keys.`m__net_sales`, 0) AS `net_sales`
  FROM lvl_0_rows AS keys
),
ranked AS (
  SELECT *, RANK() OVER (PARTITION BY `sales_channel` ORDER BY __rank_input_0 DESC NULLS LAST) AS `rank_net_sales` FROM result
)
SELECT `sales_channel`, `billing_region`, `net_sales`, `rank_net_sales`, COUNT(*) OVER () AS __total_rows
  FROM ranked
  ORDER BY `sales_channel` ASC NULLS LAST, `rank_net_sales` ASC, `net_sales` DESC NULLS LAST, `billing_region` ASC NULLS LAST
  LIMIT 1000;
