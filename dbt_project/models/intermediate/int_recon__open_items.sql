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

{%- set columns = transaction_column_names() %}

select scope.as_of_date, scope.project, scope.recon_side, scope.match_ref,
       {% for column in columns %}scope.{{ column }}, {% endfor %}scope.opened_on
from scope
where not exists (
    select 1 from paired as m
    where m.project = scope.project and m.transaction_key = scope.transaction_key
)
