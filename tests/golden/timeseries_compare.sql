-- FROM sales SHOW net_sales TIMESERIES day DURING last_month COMPARE TO previous_year WITH PERCENT_CHANGE
WITH agg_0_0 AS MATERIALIZED (
  SELECT CAST(date_trunc('day', timezone('America/New_York', sales."happened_at")) AS DATE) AS "day",
    SUM(sales.net_sales) AS "m__net_sales",
    0 AS __level
  FROM "sales" AS sales
  WHERE sales."happened_at" >= TIMESTAMPTZ '2025-11-01T00:00:00-04:00' AND sales."happened_at" < TIMESTAMPTZ '2025-12-01T00:00:00-05:00'
  GROUP BY CAST(date_trunc('day', timezone('America/New_York', sales."happened_at")) AS DATE)
),
agg_1_0 AS MATERIALIZED (
  SELECT (CASE WHEN day(CAST(CAST(date_trunc('day', timezone('America/New_York', sales."happened_at")) AS DATE) + to_months(12) AS DATE)) = day(CAST(date_trunc('day', timezone('America/New_York', sales."happened_at")) AS DATE)) THEN CAST(CAST(date_trunc('day', timezone('America/New_York', sales."happened_at")) AS DATE) + to_months(12) AS DATE) END) AS "day",
    SUM(sales.net_sales) AS "m__net_sales",
    0 AS __level
  FROM "sales" AS sales
  WHERE sales."happened_at" >= TIMESTAMPTZ '2024-11-01T00:00:00-04:00' AND sales."happened_at" < TIMESTAMPTZ '2024-12-01T00:00:00-05:00'
  GROUP BY CAST(date_trunc('day', timezone('America/New_York', sales."happened_at")) AS DATE)
),
lvl_0_rows AS (
  SELECT "day", "m__net_sales" FROM agg_0_0 WHERE __level = 0
),
lvl_1_rows AS (
  SELECT "day", "m__net_sales" FROM agg_1_0 WHERE __level = 0
),
keys AS (
  SELECT spine0.__spine AS "day"
  FROM (SELECT CAST(range AS DATE) AS __spine FROM range(CAST(TIMESTAMP '2025-11-01 00:00:00' AS TIMESTAMP), CAST(TIMESTAMP '2025-12-01 00:00:00' AS TIMESTAMP), INTERVAL 1 DAY)) AS spine0
),
result AS (
  SELECT keys."day",
    COALESCE(r."m__net_sales", 0) AS "net_sales",
    COALESCE(c1."m__net_sales", 0) AS "comparison_net_sales__previous_year",
    (CAST(COALESCE(r."m__net_sales", 0) AS DOUBLE) - CAST(COALESCE(c1."m__net_sales", 0) AS DOUBLE)) / NULLIF(ABS(CAST(COALESCE(c1."m__net_sales", 0) AS DOUBLE)), 0) AS "percent_change_net_sales__previous_year"
  FROM keys
  LEFT JOIN lvl_0_rows AS r ON r."day" IS NOT DISTINCT FROM keys."day"
  LEFT JOIN lvl_1_rows AS c1 ON c1."day" IS NOT DISTINCT FROM keys."day"
)
SELECT "day", "net_sales", "comparison_net_sales__previous_year", "percent_change_net_sales__previous_year", COUNT(*) OVER () AS __total_rows
  FROM result
  ORDER BY "day" ASC, "net_sales" DESC NULLS LAST
  LIMIT 1000;
