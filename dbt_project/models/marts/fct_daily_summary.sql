-- Per business date and project: how many rows and how much money ended in each outcome, the
-- match rate (matched rows / all open rows), the breaks (differences a person must look at,
-- one per difference: fct_breaks) and whether the project was complete, or waited for a
-- counterpart source that was not received (awaiting_sources).
-- Kept by date: a run writes its as_of date's rows and no other.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ replace_rows('as_of_date = ' ~ as_of()) }}",
    full_refresh=false,
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['as_of_date']}],
) }}

with outcomes as (
    select * from {{ ref('fct_outcomes') }} where as_of_date = {{ as_of() }}
),

breaks as (
    select as_of_date, project, currency, count(*) as break_count
    from {{ ref('fct_breaks') }}
    where as_of_date = {{ as_of() }} and needs_person
    group by as_of_date, project, currency
),

rows_per_outcome as (
    select
        as_of_date,
        project,
        currency,
        count(*) as row_count,
        count(*) filter (where outcome = 'matched') as matched_count,
        count(*) filter (where outcome = 'suspense') as suspense_count,
        count(*) filter (where outcome = 'break') as break_row_count,
        coalesce(sum(amount_minor) filter (where outcome = 'matched'), 0) as matched_amount_minor,
        coalesce(sum(amount_minor) filter (where outcome = 'suspense'), 0) as suspense_amount_minor,
        coalesce(sum(amount_minor) filter (where outcome = 'break'), 0) as break_amount_minor,
        count(*) filter (where outcome = 'resolved') as resolved_count,
        coalesce(sum(amount_minor) filter (where outcome = 'resolved'), 0)
            as resolved_amount_minor,
        round(count(*) filter (where outcome = 'matched') * 1.0 / count(*), 6) as match_rate,
        string_agg(distinct awaiting, ', ') as awaiting_sources
    from outcomes
    group by as_of_date, project, currency
)

select
    r.as_of_date,
    r.project,
    r.currency,
    r.row_count,
    r.matched_count,
    r.suspense_count,
    coalesce(b.break_count, 0) as break_count,
    r.break_row_count,
    r.matched_amount_minor,
    r.suspense_amount_minor,
    r.break_amount_minor,
    r.match_rate,
    r.awaiting_sources is null as complete,
    r.awaiting_sources,
    r.resolved_count,
    r.resolved_amount_minor
from rows_per_outcome as r
left join breaks as b using (as_of_date, project, currency)
