{#-
  Export any relation once, outside a model run:

    dbt run-operation dbt_s3_export.export_relation --args '{
      relation: main.orders,
      s3_export: {bucket: my-bucket, key: adhoc/orders.csv, file_format: csv}}'

  Name the data with exactly one of
    relation: "schema.table" or "database.schema.table"
    model:    a model's name (its s3_export meta is used when s3_export is omitted)
    source:   [source_name, table_name]
  s3_export takes the same options as model meta (a dict or a list of dicts).
-#}
{% macro export_relation(relation=none, model=none, source=none, s3_export=none, plugin_name='dbt_s3_export') %}
  {{- return(adapter.dispatch('export_relation', 'dbt_s3_export')(relation, model, source, s3_export, plugin_name)) -}}
{% endmacro %}

{% macro default__export_relation(relation, model, source, s3_export, plugin_name) %}
  {{- exceptions.raise_compiler_error(
        "export_relation: needs the dbt-duckdb adapter with the dbt_s3_export plugin, got adapter type '"
        ~ adapter.type() ~ "'") -}}
{% endmacro %}

{% macro duckdb__export_relation(relation, model, source, s3_export, plugin_name) %}
  {%- if not execute -%}{{- return('') -}}{%- endif -%}
  {%- set given = [relation, model, source] | reject('none') | list -%}
  {%- if given | length != 1 -%}
    {{- exceptions.raise_compiler_error(
          "export_relation: give exactly one of relation, model or source, got "
          ~ (given | length)) -}}
  {%- endif -%}
  {%- set found = namespace(node=none) -%}
  {%- if relation is not none -%}
    {%- set parts = (relation | string).split('.') -%}
    {%- if parts | length == 2 -%}
      {%- set parts = [target.database] + parts -%}
    {%- elif parts | length != 3 -%}
      {{- exceptions.raise_compiler_error(
            "export_relation: relation must be schema.table or database.schema.table, got '"
            ~ relation ~ "'") -}}
    {%- endif -%}
    {#- Resolved through the catalog: only an existing table or view is exported. -#}
    {%- set target_relation = adapter.get_relation(database=parts[0], schema=parts[1], identifier=parts[2]) -%}
    {%- if target_relation is none -%}
      {{- exceptions.raise_compiler_error(
            "export_relation: relation '" ~ relation ~ "' does not exist; give schema.table or "
            ~ "database.schema.table of an existing table or view") -}}
    {%- endif -%}
    {%- set name = target_relation.identifier -%}
  {%- elif model is not none -%}
    {%- set target_relation = ref(model) -%}
    {%- set name = model -%}
    {%- for candidate in graph.nodes.values() if candidate.resource_type == 'model' and candidate.name == model -%}
      {%- set found.node = candidate -%}
    {%- endfor -%}
  {%- else -%}
    {%- if source is string or source | length != 2 -%}
      {{- exceptions.raise_compiler_error(
            "export_relation: source must be [source_name, table_name], got " ~ source) -}}
    {%- endif -%}
    {%- set target_relation = builtins.source(source[0], source[1]) -%}
    {%- set name = source | join('.') -%}
  {%- endif -%}
  {%- if s3_export is none and found.node is not none -%}
    {%- set exports = dbt_s3_export._export_entries(found.node) -%}
  {%- elif s3_export is mapping -%}
    {%- set exports = [s3_export] -%}
  {%- elif s3_export is iterable and s3_export is not string -%}
    {%- set exports = s3_export | list -%}
  {%- else -%}
    {%- set exports = [] -%}
  {%- endif -%}
  {%- if exports | length == 0 -%}
    {{- exceptions.raise_compiler_error(
          "export_relation: nothing to export for '" ~ name ~ "': pass s3_export (a dict of "
          ~ "options such as {bucket: ..., key: ..., file_format: ...})") -}}
  {%- endif -%}
  {#- A model's own meta is that model's export: the same identity as its hook's. -#}
  {%- set unique_id = found.node.unique_id if (found.node is not none and s3_export is none) else none -%}
  {%- do dbt_s3_export._run_exports(plugin_name, target_relation, name, unique_id, exports) -%}
{% endmacro %}
