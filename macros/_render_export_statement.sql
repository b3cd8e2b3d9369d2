{#-
  One export as an EXPORT statement for the logs, in the shape of the reference
  connector's examples. Every option whose name suggests a credential is shown
  as ***, so the rendering is safe to log and to keep in compiled SQL.
-#}
{% macro _render_export_statement(relation, entry) %}
  {%- set shown = {} -%}
  {%- for name, value in entry.items() -%}
    {%- set lowered = name | string | lower -%}
    {%- if 'secret' in lowered or 'token' in lowered or 'password' in lowered
          or 'access_key' in lowered or lowered == 'external_id' -%}
      {%- do shown.update({name: '***'}) -%}
    {%- else -%}
      {%- do shown.update({name: value}) -%}
    {%- endif -%}
  {%- endfor -%}
  {%- set bucket = entry.get('bucket', '?') -%}
  {%- set key = entry.get('key', '?') -%}
  {{- return('EXPORT\n  SELECT * FROM ' ~ relation ~ '\nTO "s3://' ~ bucket ~ '/' ~ key ~ '"\nTYPE S3\nOPTIONS ' ~ tojson(shown, sort_keys=True) ~ ';') -}}
{% endmacro %}
