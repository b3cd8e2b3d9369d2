{#-
  The model's s3_export entries that this run exports: none at parse time (hooks
  are rendered then too), none without meta, none when exports are switched off.
-#}
{% macro _entries_to_export(node) %}
  {%- if not execute -%}
    {{- return([]) -}}
  {%- endif -%}
  {%- set entries = dbt_s3_export._export_entries(node) -%}
  {%- if entries | length > 0 and not dbt_s3_export._exports_enabled() -%}
    {%- do log('s3_export: ' ~ node.name ~ ': skipped, var dbt_s3_export_enabled is false', info=True) -%}
    {{- return([]) -}}
  {%- endif -%}
  {{- return(entries) -}}
{% endmacro %}
