-- Platform rows to correct: the platform says processing, the statement says success.
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
    outcomes.as_of_date,
    outcomes.project,
    outcomes.reference,
    outcomes.source,
    outcomes.account,
    outcomes.amount_minor,
    outcomes.currency,
    outcomes.status as platform_status,
    'success' as statement_status,
    outcomes.rule,
    outcomes.transaction_key,
    outcomes.counterpart_key
from {{ ref('fct_outcomes') }} as outcomes
where outcomes.as_of_date = {{ as_of() }} and outcomes.outcome = 'matched' and outcomes.status_corrected
    and outcomes.recon_side = 'left'
