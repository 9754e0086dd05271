{# The account registry, include/accounts.yaml, passed by tally as var `accounts` (see
   plugins/tally/accounts.py), rendered as VALUES. #}

{% macro accounts_config() -%}
    {%- set config = var('accounts', none) -%}
    {%- if config is none -%}
        {{ exceptions.raise_compiler_error("var 'accounts' is missing: run dbt through `tally` (it passes include/accounts.yaml)") }}
    {%- endif -%}
    {{ return(config) }}
{%- endmacro %}

{% macro sql_text(value) -%}
    {%- if value is none -%}null::text{%- else -%}'{{ value | string | replace("'", "''") }}'{%- endif -%}
{%- endmacro %}

{% macro sql_text_array(values) -%}
    array[{%- for value in values %}{{ sql_text(value) }}{% if not loop.last %}, {% endif %}{% endfor -%}]::text[]
{%- endmacro %}

{# A payer name as compared: no spaces, ASCII parentheses, upper case. #}
{% macro payer_name_key(expression) -%}
    upper(translate({{ expression }}, '（） ', '()'))
{%- endmacro %}

{# One row per registered account: account, bank, role, currency, statement_source. #}
{% macro registered_accounts() -%}
    {%- set rows = accounts_config()['accounts'] -%}
    select * from (values
    {%- for a in rows %}
        ({{ sql_text(a['account']) }}, {{ sql_text(a['bank']) }}, {{ sql_text(a['role']) }},
         {{ sql_text(a['currency']) }}, {{ sql_text(a['statement_source']) }}){% if not loop.last %},{% endif %}
    {%- endfor %}
    ) as registered (account, bank, role, currency, statement_source)
{%- endmacro %}

{# One row per (receiving account, channel): how that channel's payouts are recognised. #}
{% macro settlement_recognition() -%}
    {%- set rows = accounts_config()['settlements'] -%}
    {%- if rows | length == 0 -%}
    select null::text as account, null::text as channel, null::text[] as payer_names,
           null::text[] as payer_accounts, null::text[] as remittance_patterns,
           null::integer as min_delay_days, null::integer as max_delay_days
    where false
    {%- else -%}
    select account, channel,
           array(select {{ payer_name_key('n') }} from unnest(payer_names) as n) as payer_names,
           payer_accounts, remittance_patterns, min_delay_days, max_delay_days
    from (values
    {%- for s in rows %}
        ({{ sql_text(s['account']) }}, {{ sql_text(s['channel']) }},
         {{ sql_text_array(s['payer_names']) }}, {{ sql_text_array(s['payer_accounts']) }},
         {{ sql_text_array(s['remittance_patterns']) }}, {{ s['min_delay_days'] | int }},
         {{ s['max_delay_days'] | int }}){% if not loop.last %},{% endif %}
    {%- endfor %}
    ) as recognition (account, channel, payer_names, payer_accounts, remittance_patterns,
                      min_delay_days, max_delay_days)
    {%- endif -%}
{%- endmacro %}

{# A bill date captured as yyyymmdd or yyyy-mm-dd, as a date; null when it is not a date. #}
{% macro captured_date(text) -%}
    case when regexp_replace({{ text }}, '-', '', 'g') ~ '^\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$'
         then (select case when extract(month from d) = substr(c, 5, 2)::int then d end
               from (select regexp_replace({{ text }}, '-', '', 'g') as c) as cleaned,
               lateral (select (make_date(substr(c, 1, 4)::int, substr(c, 5, 2)::int, 1)
                                + (substr(c, 7, 2)::int - 1))::date as d) as made)
    end
{%- endmacro %}
