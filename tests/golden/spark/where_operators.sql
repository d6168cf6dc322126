-- FROM sales SHOW net_sales WHERE sales_channel != 'Wholesale' AND discount_code NOT IN ('A', 'B') AND customer_tags CONTAINS 'VIP' AND NOT (billing_region STARTS WITH 'New' OR is_b2b)
WITH agg_0_0 AS (
  SELECT SUM(sales.net_sales) AS `m__net_sales`,
    0 AS __level
  FROM `sales` AS sales
  LEFT JOIN `customers` AS customers ON sales.customer_id = customers.customer_id
  WHERE ((((sales.sales_channel) <> 'Wholesale') OR (sales.sales_channel) IS NULL) AND (((sales.discount_code) NOT IN ('A', 'B')) OR (sales.discount_code) IS NULL) AND (array_contains(transform((customers.tags), item -> lower(CAST(item AS STRING))), lower(CAST('VIP' AS STRING)))) AND (NOT COALESCE(((startswith(lower(CAST((sales.billing_region) AS STRING)), lower(CAST('New' AS STRING)))) OR ((sales.company_id IS NOT NULL))), FALSE)))
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
