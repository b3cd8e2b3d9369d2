-- The reference's "Partitioned CSV Export": events/year=YYYY/month=M/<unique-name>.csv
{{ config(meta={"s3_export": {
    "bucket": "my-data-lake",
    "key": "events/",
    "file_format": "csv",
    "partition_cols": ["year", "month"],
    "csv_delimiter": "\t"
}}) }}

select
    event_id,
    event_type,
    payload,
    event_time,
    year(event_time) as year,
    month(event_time) as month
from {{ ref('raw_events') }}
