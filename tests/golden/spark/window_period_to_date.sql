-- FROM sales SHOW net_sales, ytd(net_sales) TIMESERIES month DURING last_quarter
WITH agg_0_0 AS (
  SELECT CAST(date_trunc('month', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE) AS `month`,
    SUM(sales.net_sales) AS `m__net_sales`,
    0 AS __level
  FROM `sales` AS sales
  WHERE sales.`happened_at` >= TIMESTAMP '2025-07-01T00:00:00-04:00' AND sales.`happened_at` < TIMESTAMP '2025-10-01T00:00:00-04:00'
  GROUP BY CAST(date_trunc('month', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE)
),
lvl_0_rows AS (
  SELECT `month`, `m__net_sales` FROM agg_0_0 WHERE __level = 0
),
keys AS (
  SELECT spine0.__spine AS `month`
  FROM (SELECT CAST(s AS DATE) AS __spine FROM (SELECT explode(sequence(CAST(TIMESTAMP '2025-07-01 00:00:00' AS TIMESTAMP), CAST(TIMESTAMP '2025-10-01 00:00:00' AS TIMESTAMP), INTERVAL 1 MONTH)) AS s) AS steps WHERE s < CAST(TIMESTAMP '2025-10-01 00:00:00' AS TIMESTAMP)) AS spine0
),
calc_base_0 AS (
  SELECT CAST(date_trunc('month', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE) AS `month`,
    SUM(sales.net_sales) AS `m__net_sales`
  FROM `sales` AS sales
  WHERE sales.`happened_at` >= TIMESTAMP '2025-01-01T00:00:00-05:00' AND sales.`happened_at` < TIMESTAMP '2025-10-01T00:00:00-04:00'
  GROUP BY CAST(date_trunc('month', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE)
),
calc_0 AS (
  SELECT k.`month`, COALESCE(SUM(b.`m__net_sales`), 0) AS __value
  FROM keys AS k
  LEFT JOIN calc_base_0 AS b ON b.`month` <= k.`month` AND year(b.`month`) = year(k.`month`)
  GROUP BY k.`month`
),
result AS (
  SELECT keys.`month`,
    COALESCE(r.`m__net_sales`, 0) AS `net_sales`,
    w0.__value AS `ytd_net_sales`
  FROM keys
  LEFT JOIN lvl_0_rows AS r ON r.`month` IS NOT DISTINCT FROM keys.`month`
  LEFT JOIN calc_0 AS w0 ON w0.`month` IS NOT DISTINCT FROM keys.`month`
)
SELECT `month`, `net_sales`, `ytd_net_sales`, COUNT(*) OVER () AS __total_rows
  FROM result
  ORDER BY `month` ASC, `net_sales` DESC NULLS LAST
  LIMIT 1000;
