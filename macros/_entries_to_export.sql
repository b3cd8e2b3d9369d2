{#-
  The model's s3_export entries that this run exports: none at parse time (hooks
  are rendered then too), none without meta, none when exports are switched off.
  With plugin_name (dbt-duckdb), a switched-off export is told to the plugin, if
  the profile has it (a profile without it may switch exports off too).
-#}
{% macro _entries_to_export(node, plugin_name=none) %}
  {%- if not execute -%}
    {{- return([]) -}}
  {%- endif -%}
  {%- set entries = dbt_s3_export._export_entries(node) -%}
  {%- if entries | length > 0 and not dbt_s3_export._exports_enabled() -%}
    {%- if plugin_name is none or not dbt_s3_export._plugin_configured(plugin_name) -%}
      {%- do log('s3_export: ' ~ node.name ~ ': skipped, var dbt_s3_export_enabled is false', info=True) -%}
    {%- else -%}
      {#- The plugin says it once per run: here, or in on_run_end() with the count. -#}
      {%- do log('s3_export: ' ~ node.name ~ ': skipped, var dbt_s3_export_enabled is false', info=False) -%}
      {%- set payload = {'action': 'switched_off', 'model': node.name, 'invocation_id': invocation_id,
                         'run_end_hook': dbt_s3_export._has_run_end_hook()} -%}
      {%- do adapter.store_relation(plugin_name, this, [], '', 's3', payload) -%}
    {%- endif -%}
    {{- return([]) -}}
  {%- endif -%}
  {{- return(entries) -}}
{% endmacro %}

{#- Whether the project runs dbt_s3_export.on_run_end() when the run ends. -#}
{% macro _has_run_end_hook() %}
  {%- for node in graph.nodes.values() if node.resource_type == 'operation' and 'on-run-end' in node.unique_id -%}
    {%- if 'on_run_end(' in (node.raw_code or '') -%}
      {{- return(true) -}}
    {%- endif -%}
  {%- endfor -%}
  {{- return(false) -}}
{% endmacro %}

{#- Whether the target's profile loads the plugin under this name (its alias, else its module). -#}
{% macro _plugin_configured(plugin_name) %}
  {%- for plugin in target.get('plugins') or [] -%}
    {%- if (plugin.get('alias') or plugin.get('module')) == plugin_name -%}
      {{- return(true) -}}
    {%- endif -%}
  {%- endfor -%}
  {{- return(false) -}}
{% endmacro %}
