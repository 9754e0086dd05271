-- Pairs made on each business date (as_of_date), project by project, rule by rule: each pass
-- of the waterfall sees only rows still unmatched, including rows carried from earlier days.
-- Re-running a date replaces that date's pairs and nothing else. Indexed by key: a second
-- copy of a row paired on an earlier date names the row it repeats (fct_outcomes).
-- No nested loops: how many rows each pass of the waterfall pairs is unknowable before it runs
-- (the planner guesses one), and a loop over the day's scope per pair is quadratic (at 20,000
-- transactions a day: 260 s instead of 2). Every join here is an equality on a few columns,
-- which a hash join does at any size.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook=["{{ replace_rows('as_of_date = ' ~ as_of()) }}", "set local enable_nestloop = off"],
    full_refresh=false,
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['as_of_date']}, {'columns': ['left_key']}, {'columns': ['right_key']}],
    post_hook=["{{ drop_gate_day_index() }}", "analyze {{ this }}"],
) }}
{%- set config = recon_config() %}

-- The scope holds only rows still open (carried) or new: nothing paired on an earlier date.
-- It is read as the table itself, not through a CTE, so that the planner sees its statistics
-- (through a CTE each side of a project would be estimated at one row, and joined in loops).
{%- set open_rows = ref('int_recon__scope') %}

with pairs as (
    {%- for project in config['projects'] %}
    {{ recon_waterfall(project, open_rows) }}
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
    r.status as right_status,
    pairs.decision_id
from pairs
inner join {{ open_rows }} as l on l.project = pairs.project and l.transaction_key = pairs.left_key
inner join {{ open_rows }} as r on r.project = pairs.project and r.transaction_key = pairs.right_key
