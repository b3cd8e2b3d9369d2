-- case: csv_append
-- step: create_scratch
CREATE TABLE `analytics`.`exports`.`events__s3_export_20240501t120000z_0a1b2c3d` (`id` int, `name` string, `amount` decimal(10,2), `day` date)
USING csv
LOCATION 's3://lake/exports/events/'
OPTIONS ('compression' = 'none', 'header' = 'false', 'sep' = ';')

-- step: unload
INSERT INTO TABLE `analytics`.`exports`.`events__s3_export_20240501t120000z_0a1b2c3d`
SELECT `id`, `name`, `amount`, `day` FROM `analytics`.`exports`.`events`

-- step: drop_scratch
DROP TABLE IF EXISTS `analytics`.`exports`.`events__s3_export_20240501t120000z_0a1b2c3d`

-- case: hostile
-- step: create_scratch
CREATE TABLE `analytics`.`exports`.`events__s3_export_20240501t120000z_0a1b2c3d` (`select` varchar, `it's "x"` varchar, `flag` boolean, `name` varchar, `day` date)
USING parquet
PARTITIONED BY (`day`)
LOCATION 's3://lake.with.dots/exports/it\'s here \\ ünï/'
OPTIONS ('compression' = 'snappy', 'partitionOverwriteMode' = 'dynamic')

-- step: unload
INSERT OVERWRITE TABLE `analytics`.`exports`.`events__s3_export_20240501t120000z_0a1b2c3d`
SELECT `select`, `it's "x"`, `flag`, `name`, `day` FROM `analytics`.`exports`.`events` WHERE (`select` <> 'it\'s' and name <> 'C:\\dir\\')

-- step: drop_scratch
DROP TABLE IF EXISTS `analytics`.`exports`.`events__s3_export_20240501t120000z_0a1b2c3d`

-- case: parquet_overwrite_partitions
-- step: create_scratch
CREATE TABLE `analytics`.`exports`.`events__s3_export_20240501t120000z_0a1b2c3d` (`id` int, `name` string, `amount` decimal(10,2), `day` date)
USING parquet
PARTITIONED BY (`day`)
LOCATION 's3://lake/exports/events/'
OPTIONS ('compression' = 'zstd', 'maxRecordsPerFile' = '1000000', 'partitionOverwriteMode' = 'dynamic')

-- step: unload
INSERT OVERWRITE TABLE `analytics`.`exports`.`events__s3_export_20240501t120000z_0a1b2c3d`
SELECT `id`, `name`, `amount`, `day` FROM `analytics`.`exports`.`events`

-- step: drop_scratch
DROP TABLE IF EXISTS `analytics`.`exports`.`events__s3_export_20240501t120000z_0a1b2c3d`
