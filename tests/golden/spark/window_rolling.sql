-- FROM sales SHOW net_sales, rolling_avg(net_sales, 7) GROUP BY sales_channel TIMESERIES day DURING last_month
WITH agg_0_0 AS (
  SELECT CAST(date_trunc('day', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE) AS `day`,
    (sales.sales_channel) AS `sales_channel`,
    SUM(sales.net_sales) AS `m__net_sales`,
    0 AS __level
  FROM `sales` AS sales
  WHERE sales.`happened_at` >= TIMESTAMP '2025-11-01T00:00:00-04:00' AND sales.`happened_at` < TIMESTAMP '2025-12-01T00:00:00-05:00'
  GROUP BY CAST(date_trunc('day', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE), (sales.sales_channel)
),
lvl_0_rows AS (
  SELECT `day`, `sales_channel`, `m__net_sales` FROM agg_0_0 WHERE __level = 0
),
keys AS (
  SELECT spine0.__spine AS `day`, series.`sales_channel`
  FROM (SELECT CAST(s AS DATE) AS __spine FROM (SELECT explode(sequence(CAST(TIMESTAMP '2025-11-01 00:00:00' AS TIMESTAMP), CAST(TIMESTAMP '2025-12-01 00:00:00' AS TIMESTAMP), INTERVAL 1 DAY)) AS s) AS steps WHERE s < CAST(TIMESTAMP '2025-12-01 00:00:00' AS TIMESTAMP)) AS spine0
  CROSS JOIN (SELECT `sales_channel` FROM (SELECT *, COUNT(*) OVER () AS __series FROM (SELECT DISTINCT * FROM (
    SELECT `sales_channel` FROM lvl_0_rows
  ) AS s) AS d) AS counted
  WHERE CASE WHEN __series > 66666 THEN raise_error('commerceql result limit: more than 66,666 grouped values, each listed for all 30 periods') ELSE TRUE END) AS series
),
calc_base_0 AS (
  SELECT CAST(date_trunc('day', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE) AS `day`,
    (sales.sales_channel) AS `sales_channel`,
    SUM(sales.net_sales) AS `m__net_sales`
  FROM `sales` AS sales
  WHERE sales.`happened_at` >= TIMESTAMP '2025-10-26T00:00:00-04:00' AND sales.`happened_at` < TIMESTAMP '2025-12-01T00:00:00-05:00'
  GROUP BY CAST(date_trunc('day', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE), (sales.sales_channel)
),
calc_0 AS (
  SELECT k.`day`, k.`sales_channel`, CAST(COALESCE(SUM(b.`m__net_sales`), 0) AS DOUBLE) / 7 AS __value
  FROM keys AS k
  LEFT JOIN calc_base_0 AS b ON b.`sales_channel` IS NOT DISTINCT FROM k.`sales_channel` AND CAST(timestampdiff(DAY, CAST('1970-01-01' AS DATE), b.`day`) AS INTEGER) BETWEEN CAST(timestampdiff(DAY, CAST('1970-01-01' AS DATE), k.`day`) AS INTEGER) - 6 AND CAST(timestampdiff(DAY, CAST('1970-01-01' AS DATE), k.`day`) AS INTEGER)
  GROUP BY k.`day`, k.`sales_channel`
),
result AS (
  SELECT keys.`day`,
    keys.`sales_channel`,
    COALESCE(r.`m__net_sales`, 0) AS `net_sales`,
    w0.__value AS `rolling_avg_net_sales_7`
  FROM keys
  LEFT JOIN lvl_0_rows AS r ON r.`day` IS NOT DISTINCT FROM keys.`day` AND r.`sales_channel` IS NOT DISTINCT FROM keys.`sales_channel`
  LEFT JOIN calc_0 AS w0 ON w0.`day` IS NOT DISTINCT FROM keys.`day` AND w0.`sales_channel` IS NOT DISTINCT FROM keys.`sales_channel`
)
SELECT `day`, `sales_channel`, `net_sales`, `rolling_avg_net_sales_7`, COUNT(*) OVER () AS __total_rows
  FROM result
  ORDER BY `day` ASC, `net_sales` DESC NULLS LAST, `sales_channel` ASC NULLS LAST
  LIMIT 1000;
