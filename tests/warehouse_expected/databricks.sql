-- case: csv_append
-- step: drop_scratch
DROP TABLE IF EXISTS `analytics`.`exports`.`events__s3_export`

-- step: create_scratch
CREATE TABLE `analytics`.`exports`.`events__s3_export` (`id` int, `name` string, `amount` decimal(10,2), `day` date)
USING csv
LOCATION 's3://lake/exports/events/'
OPTIONS ('compression' = 'none', 'header' = 'false', 'sep' = ';')

-- step: unload
INSERT INTO TABLE `analytics`.`exports`.`events__s3_export`
SELECT `id`, `name`, `amount`, `day` FROM `analytics`.`exports`.`events`

-- step: drop_scratch
DROP TABLE IF EXISTS `analytics`.`exports`.`events__s3_export`

-- case: parquet_overwrite_partitions
-- step: drop_scratch
DROP TABLE IF EXISTS `analytics`.`exports`.`events__s3_export`

-- step: create_scratch
CREATE TABLE `analytics`.`exports`.`events__s3_export` (`id` int, `name` string, `amount` decimal(10,2), `day` date)
USING parquet
PARTITIONED BY (`day`)
LOCATION 's3://lake/exports/events/'
OPTIONS ('compression' = 'zstd', 'maxRecordsPerFile' = '1000000', 'partitionOverwriteMode' = 'dynamic')

-- step: unload
INSERT OVERWRITE TABLE `analytics`.`exports`.`events__s3_export`
SELECT `id`, `name`, `amount`, `day` FROM `analytics`.`exports`.`events`

-- step: drop_scratch
DROP TABLE IF EXISTS `analytics`.`exports`.`events__s3_export`
