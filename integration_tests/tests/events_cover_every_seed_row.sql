-- The exported model keeps every seed row.
select event_id from {{ ref('raw_events') }}
except
select event_id from {{ ref('events') }}
