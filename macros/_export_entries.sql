{#- The model's `s3_export` meta as a list of option dicts (empty when not set). -#}
{% macro _export_entries(node) %}
  {%- set meta = node.config.get('meta', {}) or {} -%}
  {%- set raw = meta.get('s3_export') -%}
  {%- if raw is none -%}
    {%- set raw = (node.get('meta', {}) or {}).get('s3_export') -%}
  {%- endif -%}
  {%- if raw is none -%}
    {{- return([]) -}}
  {%- elif raw is mapping -%}
    {{- return([raw]) -}}
  {%- elif raw is iterable and raw is not string -%}
    {%- for entry in raw -%}
      {%- if entry is not mapping -%}
        {{- exceptions.raise_compiler_error(
              "export_to_s3: model '" ~ node.name ~ "': s3_export entry " ~ loop.index0
              ~ " must be a dict of options, got " ~ (entry | string)) -}}
      {%- endif -%}
    {%- endfor -%}
    {{- return(raw | list) -}}
  {%- else -%}
    {{- exceptions.raise_compiler_error(
          "export_to_s3: model '" ~ node.name ~ "': s3_export must be a dict of options or a "
          ~ "list of them, got " ~ (raw | string)) -}}
  {%- endif -%}
{% endmacro %}
