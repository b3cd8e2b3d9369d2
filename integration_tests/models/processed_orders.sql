-- The reference's "Basic Export": one Parquet object.
{{ config(meta={"s3_export": {
    "bucket": "my-output-bucket",
    "key": "orders/all_orders.parquet",
    "file_format": "parquet",
    "region": "us-east-1"
}}) }}

select
    order_id,
    customer,
    status,
    cast(amount as decimal(10, 2)) as amount,
    ordered_at
from {{ ref('raw_orders') }}
where status != 'cancelled'
