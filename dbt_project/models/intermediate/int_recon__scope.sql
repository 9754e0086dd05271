-- For the business date being reconciled (var as_of): every row each project must reconcile
-- that day, as configured in include/reconciliation.yaml: the items still open at the end of
-- the last date reconciled before it (its state in int_recon__open_items), carried with the
-- date they opened, and the new canonical rows of the dates since. Nothing older is read: rows
-- paired on earlier dates are not here. Failed platform rows are not reconciled.
-- Unlogged (no WAL): rebuilt on every run from the state it carries forward.
-- Indexed by project and key: the gate looks up each outcome's row here.
{{ config(unlogged=true, indexes=[{'columns': ['project', 'transaction_key']}],
          post_hook="analyze {{ this }}") }}
{%- set config = recon_config() %}
{%- set columns = transaction_column_names() %}
{%- set state_date = since() %}

with transactions as (
    select * from {{ ref('int_transactions') }}
    where {{ new_days() }} and status <> 'failed'
),

new_rows as (
    {%- for project in config['projects'] %}
    {%- set match_ref = project.get('explain_key', 'reference') %}
    select '{{ project["project"] }}' as project, 'left' as recon_side,
           t.{{ match_ref }} as match_ref, t.*, {{ as_of() }} as opened_on,
           false as out_of_reach
    from transactions as t where {{ project['left'] }}
    union all
    select '{{ project["project"] }}' as project, 'right' as recon_side,
           t.{{ match_ref }} as match_ref, t.*, {{ as_of() }} as opened_on,
           false as out_of_reach
    from transactions as t where {{ project['right'] }}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
)

{%- if state_date %},

-- The state is read by name, not by ref: it is this model's own output of an earlier date,
-- written by int_recon__open_items from this scope.
-- An item a person resolved on that date (resolved_by) is closed: it is not carried. A state
-- kept by an earlier release has no such column, and nothing resolved.
{%- set state_columns = (adapter.get_columns_in_relation(open_items_relation())
                         | map(attribute='name') | list) if execute else [] %}
carried as (
    select project, recon_side, match_ref, {{ columns | join(', ') }}, opened_on
    from {{ open_items_relation() }}
    where as_of_date = '{{ state_date }}'::date
    {%- if 'resolved_by' in state_columns %} and resolved_by is null{% endif %}
),

-- Whether a rule could still pair a carried item with a new row, per project, from the other
-- side's earliest new row (macro out_of_reach): the waterfall reads only those that could, so
-- its cost follows the day's rows and the recent open items, not every item left open.
earliest_new as (
    select project, recon_side, min(event_at) as earliest_event_at
    from new_rows group by project, recon_side
),

carried_in_reach as (
    select c.*,
        case
            {%- for project in config['projects'] %}
            when c.project = '{{ project["project"] }}'
                then {{ out_of_reach(project, "'" ~ state_date ~ "'::date + 1") }}
            {%- endfor %}
        end as out_of_reach
    from carried as c
    left join earliest_new as n
        on n.project = c.project and n.recon_side = {{ other_side('c') }}
)
{%- endif %}

select {{ as_of() }} as as_of_date, in_scope.*
from (
    select * from new_rows
    {%- if state_date %}
    union all
    select * from carried_in_reach
    {%- endif %}
) as in_scope
