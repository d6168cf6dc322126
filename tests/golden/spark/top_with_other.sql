-- FROM sales SHOW net_sales GROUP BY month, TOP 5 product_title DURING last_quarter
WITH agg_pre_0 AS (
  SELECT CAST(date_trunc('month', from_utc_timestamp(sales.`happened_at`, 'America/New_York')) AS DATE) AS __d0,
    (products.title) AS __d1,
    SUM(sales.net_sales) AS `m__net_sales`
  FROM `sales` AS sales
  LEFT JOIN `products` AS products ON sales.product_id = products.product_id
  WHERE sales.`happened_at` >= TIMESTAMP '2025-07-01T00:00:00-04:00' AND sales.`happened_at` < TIMESTAMP '2025-10-01T00:00:00-04:00'
  GROUP BY __d0, __d1
),
top_1 AS (
  SELECT __d0 AS __p0, __d1 AS __value, SUM(`m__net_sales`) AS __rank_value, TRUE AS __in_top
  FROM agg_pre_0
  GROUP BY __p0, __value
  QUALIFY row_number() OVER (PARTITION BY __p0 ORDER BY __rank_value DESC NULLS LAST, __value NULLS LAST) <= 5
),
agg_0_0 AS (
  SELECT pre.__d0 AS `month`,
    (CASE WHEN top_1.__in_top THEN pre.__d1 ELSE 'Other' END) AS `product_title`,
    SUM(`m__net_sales`) AS `m__net_sales`,
    0 AS __level
  FROM agg_pre_0 AS pre
  LEFT JOIN top_1 ON top_1.__value IS NOT DISTINCT FROM pre.__d1 AND top_1.__p0 IS NOT DISTINCT FROM pre.__d0
  GROUP BY pre.__d0, (CASE WHEN top_1.__in_top THEN pre.__d1 ELSE 'Other' END)
),
lvl_0_rows AS (
  SELECT `month`, `product_title`, `m__net_sales` FROM agg_0_0 WHERE __level = 0
),
result AS (
  SELECT keys.`month`,
    keys.`product_title`,
    COALESCE(keys.`m__net_sales`, 0) AS `net_sales`
  FROM lvl_0_rows AS keys
)
SELECT `month`, `product_title`, `net_sales`, COUNT(*) OVER () AS __total_rows
  FROM result
  ORDER BY `month` ASC, (`product_title` = 'Other') ASC, `net_sales` DESC NULLS LAST, `product_title` ASC NULLS LAST
  LIMIT 1000;
