-- FROM sales SHOW net_sales GROUP BY product_type, company_tier DURING last_year
WITH agg_0_0 AS (
  SELECT (products.product_type) AS `product_type`,
    (companies.tier) AS `company_tier`,
    SUM(sales.net_sales) AS `m__net_sales`,
    0 AS __level
  FROM `sales` AS sales
  LEFT JOIN `products` AS products ON sales.product_id = products.product_id
  LEFT JOIN `companies` AS companies ON sales.company_id = companies.company_id
  WHERE sales.`happened_at` >= TIMESTAMP '2024-01-01T00:00:00-05:00' AND sales.`happened_at` < TIMESTAMP '2025-01-01T00:00:00-05:00'
  GROUP BY (products.product_type), (companies.tier)
),
lvl_0_rows AS (
  SELECT `product_type`, `company_tier`, `m__net_sales` FROM agg_0_0 WHERE __level = 0
),
result AS (
  SELECT keys.`product_type`,
    keys.`company_tier`,
    COALESCE(keys.`m__net_sales`, 0) AS `net_sales`
  FROM lvl_0_rows AS keys
)
SELECT `product_type`, `company_tier`, `net_sales`, COUNT(*) OVER () AS __total_rows
  FROM result
  ORDER BY `net_sales` DESC NULLS LAST, `product_type` ASC NULLS LAST, `company_tier` ASC NULLS LAST
  LIMIT 1000;
