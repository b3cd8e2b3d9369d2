{#-
  Check one s3_export entry for a warehouse against the shared option spec
  (macros/_option_spec.sql, generated from dbt_s3_export/options.py) and return
  it normalised: `to` expanded, defaults applied, choices lower-cased, the key
  of a folder export ending in '/', and options that only tell another engine
  how to reach S3 dropped. Anything this warehouse cannot honour fails here,
  before a statement is sent.
-#}
{% macro _check_options(entry, adapter_name, context) %}
  {%- set spec = dbt_s3_export._option_spec() -%}
  {%- set opts = {} -%}
  {%- for name, value in entry.items() -%}
    {%- if name not in spec -%}
      {%- set close = [] -%}
      {%- for known in spec.keys() | sort -%}
        {%- if known[:4] == (name | string)[:4] or (name | string) in known or known in (name | string) -%}
          {%- set contained = (name | string) in known or known in (name | string) -%}
          {%- do close.append({'name': known, 'distance': (0 if contained else 100) + (known | length - name | string | length) | abs}) -%}
        {%- endif -%}
      {%- endfor -%}
      {%- set close = close | sort(attribute='distance') | list -%}
      {%- set shown = [] -%}
      {%- for near in close[:3] if near.distance < close[0].distance + 3 -%}
        {%- set honoured = spec[near.name].adapters -%}
        {%- do shown.append("'" ~ near.name ~ "'" ~ ('' if adapter_name in honoured else ' (an option of ' ~ (honoured | join(', ')) ~ ')')) -%}
      {%- endfor -%}
      {%- set here = [] -%}
      {%- for known, option in spec.items() if adapter_name in option.adapters -%}
        {%- do here.append(known) -%}
      {%- endfor -%}
      {%- set listed = 'The options on ' ~ adapter_name ~ ': ' ~ (here | sort | join(', ')) -%}
      {{- dbt_s3_export._s3_fail(context, name, adapter_name, 'unknown option',
            ('Did you mean ' ~ (shown | join(' or ')) ~ '? ' if shown else '') ~ listed) -}}
    {%- endif -%}
    {%- set option = spec[name] -%}
    {%- if value is none -%}
      {#- null means unset, as in the plugin -#}
    {%- elif adapter_name not in option.adapters -%}
      {%- if option.scope == 'output' -%}
        {{- dbt_s3_export._s3_fail(context, name, adapter_name,
              'is not supported on ' ~ adapter_name ~ ' (honoured on ' ~ (option.adapters | join(', ')) ~ ')',
              dbt_s3_export._s3_unsupported_fix(name, adapter_name)) -}}
      {%- endif -%}
    {%- else -%}
      {%- do opts.update({name: dbt_s3_export._s3_typed(name, value, option, adapter_name, context)}) -%}
    {%- endif -%}
  {%- endfor -%}
  {#- to: s3://bucket/key is shorthand for bucket + key; they must agree. -#}
  {%- if opts.get('to') is not none -%}
    {%- set to = opts.pop('to') -%}
    {%- if not to.startswith('s3://') or '/' not in to[5:] -%}
      {{- dbt_s3_export._s3_fail(context, 'to', adapter_name, "must look like s3://bucket/key, got '" ~ to ~ "'", 'For example s3://my-bucket/orders/') -}}
    {%- endif -%}
    {%- set parts = to[5:].split('/', 1) -%}
    {%- for name, value in [('bucket', parts[0]), ('key', parts[1])] -%}
      {%- if opts.get(name) is not none and opts[name] != value -%}
        {{- dbt_s3_export._s3_fail(context, name, adapter_name, "is '" ~ opts[name] ~ "' but 'to' (" ~ to ~ ") says '" ~ value ~ "'", "Give either 'to' or 'bucket' and 'key', not both") -}}
      {%- endif -%}
      {%- do opts.update({name: value}) -%}
    {%- endfor -%}
  {%- endif -%}
  {%- for name in ['bucket', 'key', 'file_format'] -%}
    {%- if opts.get(name) is none -%}
      {{- dbt_s3_export._s3_fail(context, name, adapter_name, 'is required but missing', 'Add it to the s3_export meta') -}}
    {%- endif -%}
  {%- endfor -%}
  {%- for name, option in spec.items() -%}
    {%- if option.default is not none and opts.get(name) is none and adapter_name in option.adapters -%}
      {%- do opts.update({name: option.default}) -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if opts.bucket.startswith('s3://') or not modules.re.match('^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$', opts.bucket) -%}
    {{- dbt_s3_export._s3_fail(context, 'bucket', adapter_name, "'" ~ opts.bucket ~ "' is not a bare S3 bucket name", 'Bucket names are 3 to 63 lowercase letters, digits, dots and hyphens; put the path in key') -}}
  {%- endif -%}
  {%- if opts.key.startswith('/') or opts.key.startswith('s3://') or '//' in opts.key -%}
    {{- dbt_s3_export._s3_fail(context, 'key', adapter_name, "must be a path inside the bucket, got '" ~ opts.key ~ "'", 'No leading /, no s3://, no empty segments') -}}
  {%- endif -%}
  {%- set cols = opts.get('partition_cols') or [] -%}
  {%- for col in cols -%}
    {%- if not modules.re.match('^[A-Za-z0-9][A-Za-z0-9_.~-]*$', col) -%}
      {{- dbt_s3_export._s3_fail(context, 'partition_cols', adapter_name, "column name '" ~ col ~ "' would need escaping in a folder name, or starts with '_' or '.' (hidden from readers)", 'Rename the column in the model and partition by that') -}}
    {%- endif -%}
    {%- if (cols | select('equalto', col) | list | length) > 1 -%}
      {{- dbt_s3_export._s3_fail(context, 'partition_cols', adapter_name, "names column '" ~ col ~ "' twice", 'List each partition column once') -}}
    {%- endif -%}
  {%- endfor -%}
  {%- do opts.update({'partition_cols': cols}) -%}
  {%- set delimiter = opts.get('csv_delimiter', ',') -%}
  {%- set delimiter = {'\\t': '\t', 'tab': '\t'}.get(delimiter, delimiter) -%}
  {%- if delimiter | length != 1 or delimiter in ['"', '\n', '\r'] -%}
    {{- dbt_s3_export._s3_fail(context, 'csv_delimiter', adapter_name, 'must be one character other than a quote or line break', 'For tabs write "\\t"') -}}
  {%- endif -%}
  {%- do opts.update({'csv_delimiter': delimiter}) -%}
  {%- set is_prefix = (cols | length > 0) or opts.key.endswith('/') or opts.key == '' -%}
  {%- if is_prefix and opts.key != '' and not opts.key.endswith('/') -%}
    {%- do opts.update({'key': opts.key ~ '/'}) -%}
  {%- endif -%}
  {%- if opts.mode == 'append' and not is_prefix -%}
    {{- dbt_s3_export._s3_fail(context, 'mode', adapter_name, "append adds files beside earlier ones, but key '" ~ opts.key ~ "' names one object", "End the key with '/' to export into a folder") -}}
  {%- endif -%}
  {%- if opts.mode == 'overwrite_partitions' and not cols -%}
    {{- dbt_s3_export._s3_fail(context, 'mode', adapter_name, 'overwrite_partitions replaces the partitions this run writes, but partition_cols is not set', 'Set partition_cols, or use mode replace') -}}
  {%- endif -%}
  {%- if opts.get('max_rows_per_file') and not is_prefix -%}
    {{- dbt_s3_export._s3_fail(context, 'key', adapter_name, "names one object but max_rows_per_file splits the output into files", "End the key with '/' to export into a folder") -}}
  {%- endif -%}
  {%- do opts.update({'is_prefix': is_prefix, 'destination': 's3://' ~ opts.bucket ~ '/' ~ opts.key, 'context': context, 'adapter': adapter_name}) -%}
  {{- return(opts) -}}
{% endmacro %}

{#- One value checked against its spec entry's type and choices. -#}
{% macro _s3_typed(name, value, option, adapter_name, context) %}
  {%- set kind = option.type -%}
  {%- set is_bool = value is sameas true or value is sameas false -%}
  {%- if kind == 'flag' and value is string and (value | trim | lower) in ['true', 'false'] -%}
    {{- return((value | trim | lower) == 'true') -}}
  {%- elif kind in ['boolean', 'flag'] -%}
    {%- if not is_bool -%}
      {{- dbt_s3_export._s3_fail(context, name, adapter_name, 'must be true or false, got ' ~ dbt_s3_export._s3_shown(name, value, option), 'Write it unquoted: true or false') -}}
    {%- endif -%}
  {%- elif kind == 'integer' -%}
    {%- if is_bool or value is not number or (value | int) != value or value < 1 -%}
      {{- dbt_s3_export._s3_fail(context, name, adapter_name, 'must be a whole number of at least 1, got ' ~ dbt_s3_export._s3_shown(name, value, option)) -}}
    {%- endif -%}
  {%- elif kind == 'number' -%}
    {%- if is_bool or value is not number or value <= 0 -%}
      {{- dbt_s3_export._s3_fail(context, name, adapter_name, 'must be a positive number, got ' ~ dbt_s3_export._s3_shown(name, value, option)) -}}
    {%- endif -%}
  {%- elif kind == 'string_list' -%}
    {%- if value is string or value is mapping or value is not iterable -%}
      {{- dbt_s3_export._s3_fail(context, name, adapter_name, 'must be a list of column names, got ' ~ value, "Write it as a list, e.g. ['" ~ value ~ "']") -}}
    {%- endif -%}
    {%- for item in value -%}
      {%- if item is not string or item == '' -%}
        {{- dbt_s3_export._s3_fail(context, name, adapter_name, 'must hold non-empty column names, got ' ~ item) -}}
      {%- endif -%}
    {%- endfor -%}
    {{- return(value | list) -}}
  {%- elif kind == 'mapping' -%}
    {%- if value is not mapping -%}
      {{- dbt_s3_export._s3_fail(context, name, adapter_name, 'must be a mapping of names to text, got ' ~ value) -}}
    {%- endif -%}
  {%- else -%}
    {%- if value is not string -%}
      {{- dbt_s3_export._s3_fail(context, name, adapter_name, 'must be a string, got ' ~ dbt_s3_export._s3_shown(name, value, option),
            'Quote it in YAML' if option.secret else '') -}}
    {%- endif -%}
    {%- if value == '' and name not in ['key', 'where'] -%}
      {{- dbt_s3_export._s3_fail(context, name, adapter_name, 'must not be empty') -}}
    {%- endif -%}
    {%- if option.choices -%}
      {%- set lowered = value | lower if (option.choices | join('')) == (option.choices | join('') | lower) else value -%}
      {%- if lowered not in option.choices -%}
        {{- dbt_s3_export._s3_fail(context, name, adapter_name, 'must be one of ' ~ (option.choices | join(', ')) ~ ", got '" ~ value ~ "'") -}}
      {%- endif -%}
      {{- return(lowered) -}}
    {%- endif -%}
  {%- endif -%}
  {{- return(value) -}}
{% endmacro %}

{#- A value as an error message may show it: credentials as ***. -#}
{% macro _s3_shown(name, value, option) %}
  {{- return('***' if option.secret else (value | string)) -}}
{% endmacro %}

{#- What to do instead, for output options a warehouse cannot honour. -#}
{% macro _s3_unsupported_fix(name, adapter_name) %}
  {%- set fixes = {
        'max_rows_per_file': 'Use max_file_size_mb where the warehouse splits by size (snowflake, redshift), or drop it and let the warehouse size its files',
        'max_file_size_mb': 'Use max_rows_per_file on spark/databricks, or drop it and let the warehouse size its files',
        'include_partition_cols': 'Drop it: this warehouse keeps partition columns in the folder names only',
        'rows': 'Use where with the predicate of the incremental filter instead',
        'sse': "Drop it and set the bucket's default encryption, which the warehouse's writes get",
      } -%}
  {{- return(fixes.get(name, 'Drop it for this target; the DuckDB plugin honours it')) -}}
{% endmacro %}

{#- Every failure of a warehouse export: the model, the option, the adapter, the fix. -#}
{% macro _s3_fail(context, option, adapter_name, problem, fix='') %}
  {{- exceptions.raise_compiler_error(
        'export_to_s3: ' ~ context ~ (": option '" ~ option ~ "'" if option else '') ~ ' on ' ~ adapter_name
        ~ ': ' ~ problem ~ ('. ' ~ fix if fix else '')) -}}
{% endmacro %}
