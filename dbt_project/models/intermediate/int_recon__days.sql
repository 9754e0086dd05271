-- The dates whose open-items state is kept (int_recon__open_items), one row each: the date a
-- run of a later date carries forward from (macro since), how many items stayed open and
-- which earlier state the date itself started from. Written last, after its state, so a run
-- that failed half-way never becomes a later run's starting point.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ replace_rows('as_of_date = ' ~ as_of()) }}",
    full_refresh=false,
) }}
{%- set state_date = since() %}

select
    {{ as_of() }} as as_of_date,
    {{ "'" ~ state_date ~ "'::date" if state_date else 'null::date' }} as carried_from,
    (select count(*) from {{ ref('int_recon__open_items') }}
     where as_of_date = {{ as_of() }}) as open_items,
    now() as built_at
