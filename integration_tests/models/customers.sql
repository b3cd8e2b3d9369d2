-- No s3_export meta: the folder-wide post-hook leaves this model alone.
select distinct customer from {{ ref('raw_orders') }}
