-- FROM sales SHOW orders GROUP BY day_of_week, hour_of_day DURING last_year WITH TIMEZONE 'Europe/Paris'
WITH agg_0_0 AS (
  SELECT ((dayofweek(from_utc_timestamp(sales.`happened_at`, 'Europe/Paris')) + 5) % 7) AS `day_of_week`,
    hour(from_utc_timestamp(sales.`happened_at`, 'Europe/Paris')) AS `hour_of_day`,
    COUNT(DISTINCT sales.order_id) FILTER (WHERE sales.event_type = 'order') AS `m__orders`,
    0 AS __level
  FROM `sales` AS sales
  WHERE sales.`happened_at` >= TIMESTAMP '2024-01-01T00:00:00+01:00' AND sales.`happened_at` < TIMESTAMP '2025-01-01T00:00:00+01:00'
  GROUP BY ((dayofweek(from_utc_timestamp(sales.`happened_at`, 'Europe/Paris')) + 5) % 7), hour(from_utc_timestamp(sales.`happened_at`, 'Europe/Paris'))
),
lvl_0_rows AS (
  SELECT `day_of_week`, `hour_of_day`, `m__orders` FROM agg_0_0 WHERE __level = 0
),
keys AS (
  SELECT spine0.__spine AS `day_of_week`, spine1.__spine AS `hour_of_day`
  FROM (SELECT explode(sequence(0, 6)) AS __spine) AS spine0
  CROSS JOIN (SELECT explode(sequence(0, 23)) AS __spine) AS spine1
),
result AS (
  SELECT keys.`day_of_week`,
    keys.`hour_of_day`,
    COALESCE(r.`m__orders`, 0) AS `orders`
  FROM keys
  LEFT JOIN lvl_0_rows AS r ON r.`day_of_week` IS NOT DISTINCT FROM keys.`day_of_week` AND r.`hour_of_day` IS NOT DISTINCT FROM keys.`hour_of_day`
)
SELECT `day_of_week`, `hour_of_day`, `orders`, COUNT(*) OVER () AS __total_rows
  FROM result
  ORDER BY `day_of_week` ASC, `hour_of_day` ASC, `orders` DESC NULLS LAST
  LIMIT 1000;
