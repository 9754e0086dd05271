{# A channel's fee column as the source prints it -> a signed cost: positive = fee charged,
   negative = fee returned (a refunded payment's fee). The convention is the source
   configuration's `fee_sign` (include/sources/<source>.yaml), passed by tally as var
   `fee_signs`; see plugins/tally/sources.py FEE_SIGNS. #}
{% macro fee_cost(source, fee='fee_minor', kind='kind') -%}
    {%- set signs = var('fee_signs', none) -%}
    {%- if signs is none -%}
        {{ exceptions.raise_compiler_error("var 'fee_signs' is missing: run dbt through `tally` (it passes each source's fee_sign)") }}
    {%- endif -%}
    {%- set convention = signs.get(source) -%}
    {%- if convention == 'as_printed_cost' -%}
        {{ fee }}
    {%- elif convention == 'as_printed_deduction' -%}
        (-{{ fee }})
    {%- elif convention == 'charged_on_payments' -%}
        (case when {{ kind }} = 'refund' then -abs({{ fee }}) else abs({{ fee }}) end)
    {%- else -%}
        {{ exceptions.raise_compiler_error("source " ~ source ~ ": no fee_sign convention in its configuration (got " ~ convention ~ ")") }}
    {%- endif -%}
{%- endmacro %}
