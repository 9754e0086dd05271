{# A naive source timestamp read in the source's zone, as timestamptz. #}
{% macro local_timestamp(text_expr, tz=none) -%}
    (nullif(trim({{ text_expr }}), '')::timestamp at time zone '{{ tz or var("default_timezone") }}')
{%- endmacro %}
