{# Account numbers leave the warehouse masked: only the last four characters show. #}
{% macro mask_account(column) -%}
    case when {{ column }} is null then null else '****' || right({{ column }}, 4) end
{%- endmacro %}
