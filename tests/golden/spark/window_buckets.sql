-- FROM orders SHOW orders GROUP BY bucket(order_total, 0, 100, 250, 1000), month(paid_date) DURING last_quarter
WITH order_value__order_total AS (
  SELECT orders.order_id AS __key, (COALESCE(SUM(orders.subtotal) FILTER (WHERE NOT orders.is_test), 0)) + (COALESCE(SUM(orders.shipping) FILTER (WHERE NOT orders.is_test), 0)) + (COALESCE(SUM(orders.taxes) FILTER (WHERE NOT orders.is_test), 0)) AS __value
  FROM `orders` AS orders
  GROUP BY orders.order_id
),
agg_0_0 AS (
  SELECT (CASE WHEN order_value__order_total.__value IS NULL THEN NULL WHEN order_value__order_total.__value < 0 THEN 'under 0' WHEN order_value__order_total.__value < 100 THEN '0–100' WHEN order_value__order_total.__value < 250 THEN '100–250' WHEN order_value__order_total.__value < 1000 THEN '250–1000' ELSE '1000+' END) AS `order_total_bucket`,
    (CAST(date_trunc('month', (CAST(from_utc_timestamp(orders.paid_at, 'America/New_York') AS DATE))) AS DATE)) AS `paid_date_month`,
    COUNT(*) FILTER (WHERE NOT orders.is_test) AS `m__orders`,
    0 AS __level
  FROM `orders` AS orders
  LEFT JOIN `order_value__order_total` AS order_value__order_total ON order_value__order_total.__key = orders.order_id
  WHERE orders.`created_at` >= TIMESTAMP '2025-07-01T00:00:00-04:00' AND orders.`created_at` < TIMESTAMP '2025-10-01T00:00:00-04:00'
  GROUP BY (CASE WHEN order_value__order_total.__value IS NULL THEN NULL WHEN order_value__order_total.__value < 0 THEN 'under 0' WHEN order_value__order_total.__value < 100 THEN '0–100' WHEN order_value__order_total.__value < 250 THEN '100–250' WHEN order_value__order_total.__value < 1000 THEN '250–1000' ELSE '1000+' END), (CAST(date_trunc('month', (CAST(from_utc_timestamp(orders.paid_at, 'America/New_York') AS DATE))) AS DATE))
),
lvl_0_rows AS (
  SELECT `order_total_bucket`, `paid_date_month`, `m__orders` FROM agg_0_0 WHERE __level = 0
),
result AS (
  SELECT keys.`order_total_bucket`,
    keys.`paid_date_month`,
    COALESCE(keys.`m__orders`, 0) AS `orders`
  FROM lvl_0_rows AS keys
)
SELECT `order_total_bucket`, `paid_date_month`, `orders`, COUNT(*) OVER () AS __total_rows
  FROM result
  ORDER BY (CASE `order_total_bucket` WHEN 'under 0' THEN 0 WHEN '0–100' THEN 1 WHEN '100–250' THEN 2 WHEN '250–1000' THEN 3 WHEN '1000+' THEN 4 END) ASC NULLS LAST, `paid_date_month` ASC NULLS LAST, `orders` DESC NULLS LAST
  LIMIT 1000;
