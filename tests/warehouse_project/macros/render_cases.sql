{#- Render the plans of the cases named in var('cases') for this target's adapter, without connecting. -#}
{% macro render_cases(names) %}
  {%- set cases = var('cases') -%}
  {%- set out = {} -%}
  {%- for name in names -%}
    {%- set case = cases[name] -%}
    {%- set relation = api.Relation.create(database=case.get('database'), schema='exports', identifier='events') -%}
    {%- set opts = dbt_s3_export._check_options(case.entry, adapter.type(), "model 'events' s3_export") -%}
    {%- set plan = dbt_s3_export._s3_plan(relation, opts, case.columns, '20240501T120000Z-0a1b2c3d', 'events') -%}
    {%- set steps = plan.steps | list -%}
    {%- if case.get('finish') -%}
      {%- set steps = steps + dbt_s3_export._snowflake_finish_steps(plan, case.finish.files, case.finish.listed, '2024-05-01T12:00:00Z') -%}
    {%- endif -%}
    {%- set rendered = [] -%}
    {%- for step in steps -%}
      {%- do rendered.append({'name': step.name, 'sql': step.sql, 'shown': step.shown, 'secret': step.secret}) -%}
    {%- endfor -%}
    {%- do out.update({name: rendered}) -%}
  {%- endfor -%}
  {%- do log('S3PLANS ' ~ tojson(out), info=True) -%}
{% endmacro %}
