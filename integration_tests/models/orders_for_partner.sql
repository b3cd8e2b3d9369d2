-- One model, two exports: Parquet for the lake and JSON Lines for a partner.
select order_id, customer, amount, ordered_at
from {{ ref('processed_orders') }}
