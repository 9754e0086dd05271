-- In-flight items per business date: no counterpart yet, still within their suspense days.
-- Kept by date: a run writes its as_of date's rows and no other.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ replace_rows('as_of_date = ' ~ as_of()) }}",
    full_refresh=false,
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['as_of_date']}],
) }}

select
    as_of_date,
    project,
    source,
    side,
    kind,
    reference,
    account,
    direction,
    amount_minor,
    currency,
    status,
    business_date,
    age_days,
    break_type as becomes_break_type,
    explanation,
    awaiting,
    transaction_key
from {{ ref('fct_outcomes') }}
where as_of_date = {{ as_of() }} and outcome = 'suspense'
