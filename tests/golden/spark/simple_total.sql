-- FROM sales SHOW net_sales
WITH agg_0_0 AS (
  SELECT SUM(sales.net_sales) AS `m__net_sales`,
    0 AS __level
  FROM `sales` AS sales
),
lvl_0_rows AS (
  SELECT `m__net_sales` FROM agg_0_0 WHERE __level = 0
),
result AS (
  SELECT COALESCE(keys.`m__net_sales`, 0) AS `net_sales`
  FROM lvl_0_rows AS keys
)
SELECT `net_sales`, COUNT(*) OVER () AS __total_rows
  FROM result
  ORDER BY `net_sales` DESC NULLS LAST
  LIMIT 1000;
