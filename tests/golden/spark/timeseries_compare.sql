-- FROM sales SHOW net_sales TIMESERIES day DURING last_month COMPARE TO previous_year WITH PERCENT_CHANGE
WITH agg_0_0 AS (
  SELECT CAST(date_trunc('day', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE) AS `day`,
    SUM(sales.net_sales) AS `m__net_sales`,
    0 AS __level
  FROM `sales` AS sales
  WHERE sales.`happened_at` >= TIMESTAMP '2025-11-01T00:00:00-04:00' AND sales.`happened_at` < TIMESTAMP '2025-12-01T00:00:00-05:00'
  GROUP BY CAST(date_trunc('day', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE)
),
agg_1_0 AS (
  SELECT (CASE WHEN day(CAST(add_months(CAST(date_trunc('day', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE), 12) AS DATE)) = day(CAST(date_trunc('day', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE)) THEN CAST(add_months(CAST(date_trunc('day', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE), 12) AS DATE) END) AS `day`,
    SUM(sales.net_sales) AS `m__net_sales`,
    0 AS __level
  FROM `sales` AS sales
  WHERE sales.`happened_at` >= TIMESTAMP '2024-11-01T00:00:00-04:00' AND sales.`happened_at` < TIMESTAMP '2024-12-01T00:00:00-05:00'
  GROUP BY CAST(date_trunc('day', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE)
),
lvl_0_rows AS (
  SELECT `day`, `m__net_sales` FROM agg_0_0 WHERE __level = 0
),
lvl_1_rows AS (
  SELECT `day`, `m__net_sales` FROM agg_1_0 WHERE __level = 0
),
keys AS (
  SELECT spine0.__spine AS `day`
  FROM (SELECT CAST(s AS DATE) AS __spine FROM (SELECT explode(sequence(CAST(TIMESTAMP '2025-11-01 00:00:00' AS TIMESTAMP), CAST(TIMESTAMP '2025-12-01 00:00:00' AS TIMESTAMP), INTERVAL 1 DAY)) AS s) AS steps WHERE s < CAST(TIMESTAMP '2025-12-01 00:00:00' AS TIMESTAMP)) AS spine0
),
result AS (
  SELECT keys.`day`,
    COALESCE(r.`m__net_sales`, 0) AS `net_sales`,
    COALESCE(c1.`m__net_sales`, 0) AS `comparison_net_sales__previous_year`,
    (CAST(COALESCE(r.`m__net_sales`, 0) AS DOUBLE) - CAST(COALESCE(c1.`m__net_sales`, 0) AS DOUBLE)) / NULLIF(ABS(CAST(COALESCE(c1.`m__net_sales`, 0) AS DOUBLE)), 0) AS `percent_change_net_sales__previous_year`
  FROM keys
  LEFT JOIN lvl_0_rows AS r ON r.`day` IS NOT DISTINCT FROM keys.`day`
  LEFT JOIN lvl_1_rows AS c1 ON c1.`day` IS NOT DISTINCT FROM keys.`day`
)
SELECT `day`, `net_sales`, `comparison_net_sales__previous_year`, `percent_change_net_sales__previous_year`, COUNT(*) OVER () AS __total_rows
  FROM result
  ORDER BY `day` ASC, `net_sales` DESC NULLS LAST
  LIMIT 1000;
