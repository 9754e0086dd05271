-- Pairs made on each business date (as_of_date), project by project, rule by rule: each pass
-- of the waterfall sees only rows still unmatched, including rows carried from earlier days.
-- Re-running a date replaces that date's pairs and nothing else.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='as_of_date',
    full_refresh=false,
    post_hook="analyze {{ this }}",
) }}
{%- set config = recon_config() %}

with scope as (
    select * from {{ ref('int_recon__scope') }}
),

{% if is_incremental() %}
matched_before as (
    select project, left_key as transaction_key from {{ this }} where as_of_date < {{ as_of() }}
    union
    select project, right_key from {{ this }} where as_of_date < {{ as_of() }}
),
{% endif %}

open_rows as (
    select * from scope
    {% if is_incremental() %}
    where not exists (
        select 1 from matched_before as m
        where m.project = scope.project and m.transaction_key = scope.transaction_key
    )
    {% endif %}
),

pairs as (
    {%- for project in config['projects'] %}
    {{ recon_waterfall(project, 'open_rows') }}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
)

select
    {{ as_of() }} as as_of_date,
    pairs.project,
    pairs.pass,
    pairs.rule,
    pairs.rule_kind,
    pairs.left_key,
    pairs.right_key,
    l.business_date as left_business_date,
    r.business_date as right_business_date,
    l.reference as left_reference,
    r.reference as right_reference,
    l.amount_minor as left_amount_minor,
    r.amount_minor as right_amount_minor,
    pairs.amount_difference_minor,
    round(pairs.minutes_apart::numeric, 1) as minutes_apart,
    pairs.expected_days_apart,
    l.currency,
    l.status as left_status,
    r.status as right_status
from pairs
inner join open_rows as l on l.project = pairs.project and l.transaction_key = pairs.left_key
inner join open_rows as r on r.project = pairs.project and r.transaction_key = pairs.right_key
