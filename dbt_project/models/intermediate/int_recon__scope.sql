-- For the business date being reconciled (var as_of): every row in scope of each project,
-- as configured in include/reconciliation.yaml, that has arrived by that date. Failed platform
-- rows are not reconciled. (Rows matched on earlier dates are taken out by fct_matches.)
-- Unlogged (no WAL): the table is rebuilt in full on every run, so a crash that empties it
-- loses nothing the next run does not rebuild.
{{ config(unlogged=true, post_hook="analyze {{ this }}") }}
{%- set config = recon_config() %}

with transactions as (
    select * from {{ ref('int_transactions') }}
    where business_date <= {{ as_of() }} and status <> 'failed'
),

in_scope as (
    {%- for project in config['projects'] %}
    {%- set match_ref = project.get('explain_key', 'reference') %}
    select '{{ project["project"] }}' as project, 'left' as recon_side,
           t.{{ match_ref }} as match_ref, t.*
    from transactions as t where {{ project['left'] }}
    union all
    select '{{ project["project"] }}' as project, 'right' as recon_side,
           t.{{ match_ref }} as match_ref, t.*
    from transactions as t where {{ project['right'] }}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
)

select {{ as_of() }} as as_of_date, * from in_scope
