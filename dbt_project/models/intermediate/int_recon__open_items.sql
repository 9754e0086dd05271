-- The open-items state, kept per date (as_of_date): every row in scope that no rule has
-- paired by the end of that date, in suspense or a break, with the date it opened. The next
-- date's scope starts from it, so a day's run reads that day's rows and these, and nothing
-- older; a re-run of a date starts again from the state of the date before it.
-- fct_outcomes classifies these rows and looks for their nearest candidates.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ replace_rows('as_of_date = ' ~ as_of()) }}",
    full_refresh=false,
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['as_of_date']}],
    post_hook="analyze {{ this }}",
) }}

with scope as (
    select * from {{ ref('int_recon__scope') }}
),

-- Keys paired today (the scope holds only rows open before today's rules ran).
paired as (
    select project, left_key as transaction_key
    from {{ ref('fct_matches') }} where as_of_date = {{ as_of() }}
    union all
    select project, right_key
    from {{ ref('fct_matches') }} where as_of_date = {{ as_of() }}
)

,

-- Items a person closed in the workbench (an approved mark_normal, write_off or adjustment
-- naming the row), by the earliest such decision: fct_outcomes shows them resolved on this
-- date, and the next date's scope no longer carries them.
resolutions as (
    select distinct on (d.project, k.key) d.project, k.key as transaction_key,
           d.decision_id, d.action
    from {{ source('workbench', 'approved_decisions') }} as d
    cross join lateral unnest(d.left_keys || d.right_keys) as k (key)
    where d.action in {{ resolving_actions() }}
    order by d.project, k.key, d.decision_id
)

{%- set columns = transaction_column_names() %}

select scope.as_of_date, scope.project, scope.recon_side, scope.match_ref,
       {% for column in columns %}scope.{{ column }}, {% endfor %}scope.opened_on,
       r.decision_id as resolved_by, r.action as resolution
from scope
left join resolutions as r
    on r.project = scope.project and r.transaction_key = scope.transaction_key
where not exists (
    select 1 from paired as m
    where m.project = scope.project and m.transaction_key = scope.transaction_key
)
