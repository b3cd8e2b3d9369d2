{#-
  Export the current model to S3 as its `meta.s3_export` says.

  Use as a post-hook:  post_hook="{{ dbt_s3_export.export_to_s3() }}"
  A model without `s3_export` meta is not exported, so the hook can be set once
  for a whole folder in dbt_project.yml.

  plugin_name: the name the plugin has in profiles.yml (its `alias`, or
  `dbt_s3_export` when none is given).

  On DuckDB the Python plugin exports; on Snowflake, Redshift, BigQuery,
  Databricks, Spark and Athena the warehouse unloads the model itself with its
  own statement (macros/warehouses/), from the same meta.
-#}
{% macro export_to_s3(plugin_name='dbt_s3_export') %}
  {{- return(adapter.dispatch('export_to_s3', 'dbt_s3_export')(plugin_name)) -}}
{% endmacro %}

{% macro default__export_to_s3(plugin_name) %}
  {{- exceptions.raise_compiler_error(
        "export_to_s3: no export for adapter type '" ~ adapter.type() ~ "': use dbt-duckdb with the "
        ~ "dbt_s3_export plugin, or snowflake, redshift, bigquery, databricks, spark or athena") -}}
{% endmacro %}

{% macro snowflake__export_to_s3(plugin_name) %}{{ return(dbt_s3_export._warehouse_export(model, this)) }}{% endmacro %}
{% macro redshift__export_to_s3(plugin_name) %}{{ return(dbt_s3_export._warehouse_export(model, this)) }}{% endmacro %}
{% macro bigquery__export_to_s3(plugin_name) %}{{ return(dbt_s3_export._warehouse_export(model, this)) }}{% endmacro %}
{% macro spark__export_to_s3(plugin_name) %}{{ return(dbt_s3_export._warehouse_export(model, this)) }}{% endmacro %}
{% macro databricks__export_to_s3(plugin_name) %}{{ return(dbt_s3_export._warehouse_export(model, this)) }}{% endmacro %}
{% macro athena__export_to_s3(plugin_name) %}{{ return(dbt_s3_export._warehouse_export(model, this)) }}{% endmacro %}

{% macro duckdb__export_to_s3(plugin_name) %}
  {%- set exports = dbt_s3_export._entries_to_export(model, plugin_name) -%}
  {%- if exports | length == 0 -%}
    {{- return('') -}}
  {%- endif -%}
  {#- An incremental model rebuilt from scratch: its append exports start over too. -#}
  {%- set refresh = model.config.get('full_refresh') -%}
  {%- if refresh is none -%}{%- set refresh = flags.FULL_REFRESH -%}{%- endif -%}
  {%- set full_refresh = model.config.materialized == 'incremental' and refresh in (true, 'true', 'True') -%}
  {{- return(dbt_s3_export._run_exports(plugin_name, this, model.name, model.unique_id, exports, full_refresh, model.config.materialized)) -}}
{% endmacro %}
