{#- False when the project or the command line sets var dbt_s3_export_enabled to false. -#}
{% macro _exports_enabled() %}
  {%- set value = var('dbt_s3_export_enabled', true) -%}
  {{- return(not (value is false or (value | string | lower) in ['false', '0', 'no', 'off'])) -}}
{% endmacro %}
