{#-
  One export as an EXPORT statement for the logs, in the shape of the reference
  connector's examples. Every option whose name suggests a credential is shown
  as ***, so the rendering is safe to log and to keep in compiled SQL. The test
  is by name, not by the list of known options, so a misspelt credential option
  (which the plugin rejects later) is hidden too: anything with secret, token,
  pass, credential or auth in its name, external_id, and any name holding "key"
  other than the object `key` and the (public) `sse_kms_key_id`. Credentials in a
  URL (`http://user:password@host`) are hidden as well.
-#}
{#- The options with secrets as ***; a nested mapping (catalog, glue) is shown the same way,
    and a catalog `uri` that carries a password (user:password@host) is hidden whole. -#}
{% macro _redact_options(options) %}
  {%- set shown = {} -%}
  {%- for name, value in options.items() -%}
    {%- set lowered = name | string | lower -%}
    {%- if 'secret' in lowered or 'token' in lowered or 'pass' in lowered
          or 'credential' in lowered or 'auth' in lowered or 'external' in lowered
          or ('key' in lowered and lowered not in ('key', 'sse_kms_key_id'))
          or (lowered == 'uri' and value is string and '@' in value) -%}
      {%- do shown.update({name: '***'}) -%}
    {%- elif value is mapping -%}
      {%- do shown.update({name: dbt_s3_export._redact_options(value)}) -%}
    {%- else -%}
      {%- do shown.update({name: value}) -%}
    {%- endif -%}
  {%- endfor -%}
  {{- return(shown) -}}
{% endmacro %}

{% macro _render_export_statement(relation, entry) %}
  {%- set shown = dbt_s3_export._redact_options(entry) -%}
  {%- set bucket = entry.get('bucket', '?') -%}
  {%- set key = entry.get('key', '?') -%}
  {%- set rendered = 'EXPORT\n  SELECT * FROM ' ~ relation ~ '\nTO "s3://' ~ bucket ~ '/' ~ key ~ '"\nTYPE S3\nOPTIONS ' ~ tojson(shown, sort_keys=True) ~ ';' -%}
  {#- A URL's user:password@ (endpoint_url) is hidden too; the plugin refuses such URLs. -#}
  {{- return(modules.re.sub('(https?://)[^"]*@', '\\1***@', rendered)) -}}
{% endmacro %}
