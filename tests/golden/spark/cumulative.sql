-- FROM sales SHOW net_sales TIMESERIES month DURING last_year WITH CUMULATIVE_VALUES
WITH agg_0_0 AS (
  SELECT CAST(date_trunc('month', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE) AS `month`,
    SUM(sales.net_sales) AS `m__net_sales`,
    0 AS __level
  FROM `sales` AS sales
  WHERE sales.`happened_at` >= TIMESTAMP '2024-01-01T00:00:00-05:00' AND sales.`happened_at` < TIMESTAMP '2025-01-01T00:00:00-05:00'
  GROUP BY CAST(date_trunc('month', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE)
),
lvl_0_rows AS (
  SELECT `month`, `m__net_sales` FROM agg_0_0 WHERE __level = 0
),
keys AS (
  SELECT spine0.__spine AS `month`
  FROM (SELECT CAST(s AS DATE) AS __spine FROM (SELECT explode(sequence(CAST(TIMESTAMP '2024-01-01 00:00:00' AS TIMESTAMP), CAST(TIMESTAMP '2025-01-01 00:00:00' AS TIMESTAMP), INTERVAL 1 MONTH)) AS s) AS steps WHERE s < CAST(TIMESTAMP '2025-01-01 00:00:00' AS TIMESTAMP)) AS spine0
),
result AS (
  SELECT keys.`month`,
    COALESCE(r.`m__net_sales`, 0) AS `net_sales`
  FROM keys
  LEFT JOIN lvl_0_rows AS r ON r.`month` IS NOT DISTINCT FROM keys.`month`
),
cumulated AS (
  SELECT *, SUM(`net_sales`) OVER (ORDER BY `month` ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS `net_sales__cumulative` FROM result
)
SELECT `month`, `net_sales`, `net_sales__cumulative`, COUNT(*) OVER () AS __total_rows
  FROM cumulated
  ORDER BY `month` ASC, `net_sales` DESC NULLS LAST
  LIMIT 1000;
