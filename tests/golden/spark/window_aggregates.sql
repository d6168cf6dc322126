-- FROM orders SHOW count_distinct(company_id), median(order_total), percentile(days_past_due, 0.9) GROUP BY sales_channel DURING last_year
WITH order_value__order_total AS (
  SELECT orders.order_id AS __key, (COALESCE(SUM(orders.subtotal) FILTER (WHERE NOT orders.is_test), 0)) + (COALESCE(SUM(orders.shipping) FILTER (WHERE NOT orders.is_test), 0)) + (COALESCE(SUM(orders.taxes) FILTER (WHERE NOT orders.is_test), 0)) AS __value
  FROM `orders` AS orders
  GROUP BY orders.order_id
),
agg_0_0 AS (
  SELECT (orders.sales_channel) AS `sales_channel`,
    COUNT(DISTINCT CASE WHEN NOT orders.is_test THEN (orders.company_id) END) AS `m__count_distinct_company_id`,
    percentile(CAST(CASE WHEN NOT orders.is_test THEN (order_value__order_total.__value) END AS DOUBLE), 0.5) AS `m__median_order_total`,
    percentile(CAST(CASE WHEN NOT orders.is_test THEN (orders.days_past_due) END AS DOUBLE), 0.9) AS `m__p90_days_past_due`,
    0 AS __level
  FROM `orders` AS orders
  LEFT JOIN `order_value__order_total` AS order_value__order_total ON order_value__order_total.__key = orders.order_id
  WHERE orders.`created_at` >= TIMESTAMP '2024-01-01T00:00:00-05:00' AND orders.`created_at` < TIMESTAMP '2025-01-01T00:00:00-05:00'
  GROUP BY (orders.sales_channel)
),
lvl_0_rows AS (
  SELECT `sales_channel`, `m__count_distinct_company_id`, `m__median_order_total`, `m__p90_days_past_due` FROM agg_0_0 WHERE __level = 0
),
result AS (
  SELECT keys.`sales_channel`,
    COALESCE(keys.`m__count_distinct_company_id`, 0) AS `count_distinct_company_id`,
    keys.`m__median_order_total` AS `median_order_total`,
    keys.`m__p90_days_past_due` AS `p90_days_past_due`
  FROM lvl_0_rows AS keys
)
SELECT `sales_channel`, `count_distinct_company_id`, `median_order_total`, `p90_days_past_due`, COUNT(*) OVER () AS __total_rows
  FROM result
  ORDER BY `count_distinct_company_id` DESC NULLS LAST, `sales_channel` ASC NULLS LAST
  LIMIT 1000;
