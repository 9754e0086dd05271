{# Reconciliation SQL generated from include/reconciliation.yaml (passed as var `reconciliation`
   by tally; see plugins/tally/recon.py). #}

{% macro recon_config() -%}
    {%- set config = var('reconciliation', none) -%}
    {%- if config is none -%}
        {{ exceptions.raise_compiler_error("var 'reconciliation' is missing: run dbt through `tally` (it passes include/reconciliation.yaml)") }}
    {%- endif -%}
    {{ return(config) }}
{%- endmacro %}

{% macro as_of() -%}
    {%- set day = var('as_of', none) -%}
    {%- if day is none -%}
        {{ exceptions.raise_compiler_error("var 'as_of' (the business date to reconcile) is missing") }}
    {%- endif -%}
    '{{ day }}'::date
{%- endmacro %}

{# The minutes between two timestamps, as a number. #}
{% macro minutes_apart(a, b) -%}
    abs(extract(epoch from ({{ a }} - {{ b }}))) / 60.0
{%- endmacro %}

{% macro keys_equal(keys, l='l', r='r') -%}
    {%- for key in keys %}{{ l }}.{{ key }} = {{ r }}.{{ key }}{% if not loop.last %} and {% endif %}{% endfor -%}
{%- endmacro %}

{# Business days between the two rows (absolute): at least min_days_apart, at most
   max_days_apart, each if the rule sets it. #}
{% macro days_apart_ok(rule, l='l', r='r') -%}
    {%- set bounds = [] -%}
    {%- if rule.get('min_days_apart') is not none -%}
        {%- do bounds.append('abs(' ~ l ~ '.business_date - ' ~ r ~ '.business_date) >= ' ~ (rule['min_days_apart'] | int)) -%}
    {%- endif -%}
    {%- if rule.get('max_days_apart') is not none -%}
        {%- do bounds.append('abs(' ~ l ~ '.business_date - ' ~ r ~ '.business_date) <= ' ~ (rule['max_days_apart'] | int)) -%}
    {%- endif -%}
    {{ bounds | join(' and ') if bounds else 'true' }}
{%- endmacro %}

{# One pass of a rule over the rows still unmatched (relations `left_rows` and `right_rows`,
   columns of int_recon__scope). Returns pairs: left_key, right_key, amount_difference_minor,
   minutes_apart. No row appears twice on its side. #}
{% macro recon_pass(rule, left_rows, right_rows) -%}
    {%- if rule['kind'] == 'exact' -%}
        {%- set partition = rule['keys'] + ['amount_minor'] -%}
        with l as (
            select *, row_number() over (
                partition by {{ partition | join(', ') }} order by event_at, transaction_key) as occurrence
            from {{ left_rows }}
        ),
        r as (
            select *, row_number() over (
                partition by {{ partition | join(', ') }} order by event_at, transaction_key) as occurrence
            from {{ right_rows }}
        )
        select l.transaction_key as left_key, r.transaction_key as right_key,
               r.amount_minor - l.amount_minor as amount_difference_minor,
               {{ minutes_apart('l.event_at', 'r.event_at') }} as minutes_apart
        from l inner join r
            on {{ keys_equal(partition) }} and l.occurrence = r.occurrence
        where {{ days_apart_ok(rule) }}
    {%- elif rule['kind'] == 'tolerance' -%}
        {%- set tol = rule.get('amount_tolerance_minor', 0) -%}
        {%- set ppm = rule.get('amount_tolerance_ppm', 0) -%}
        with candidates as (
            select l.transaction_key as left_key, r.transaction_key as right_key,
                   r.amount_minor - l.amount_minor as amount_difference_minor,
                   {{ minutes_apart('l.event_at', 'r.event_at') }} as minutes_apart
            from {{ left_rows }} as l
            inner join {{ right_rows }} as r on {{ keys_equal(rule['keys']) }}
            where abs(r.amount_minor - l.amount_minor)
                    <= greatest({{ tol }}, l.amount_minor * {{ ppm }} / 1000000)
              and {{ minutes_apart('l.event_at', 'r.event_at') }} <= {{ rule.get('time_window_minutes', 1440) }}
              and {{ days_apart_ok(rule) }}
        ),
        ranked as (
            select *,
                row_number() over (partition by left_key
                    order by abs(amount_difference_minor), minutes_apart, right_key) as left_rank,
                row_number() over (partition by right_key
                    order by abs(amount_difference_minor), minutes_apart, left_key) as right_rank
            from candidates
        )
        {# Mutual nearest: each keeps the other as its best candidate. #}
        select left_key, right_key, amount_difference_minor, minutes_apart
        from ranked where left_rank = 1 and right_rank = 1
    {%- elif rule['kind'] == 'group' -%}
        {#- many-to-one by default (many left rows, one right row); group_side: right makes it
            one-to-many (one left row, many right rows) -#}
        {%- set key = rule['group_key'] -%}
        {%- set many_right = rule.get('group_side', 'left') == 'right' -%}
        {%- set many_rows = right_rows if many_right else left_rows -%}
        {%- set one_rows = left_rows if many_right else right_rows -%}
        {%- set many_amount = rule.get('right_amount' if many_right else 'left_amount', 'signed_amount_minor') -%}
        {%- set one_amount = rule.get('left_amount' if many_right else 'right_amount', 'signed_amount_minor') -%}
        with groups as (
            select {{ key }} as group_key, sum({{ many_amount }}) as group_amount,
                   max(event_at) as last_event_at
            from {{ many_rows }} where {{ key }} is not null group by {{ key }}
        ),
        targets as (
            select *, {{ one_amount }} as target_amount,
                   row_number() over (partition by {{ key }} order by event_at, transaction_key) as occurrence
            from {{ one_rows }} where {{ key }} is not null
        ),
        paired as (
            select g.group_key, t.transaction_key as one_key,
                   {% if many_right %}g.group_amount - t.target_amount{% else %}t.target_amount - g.group_amount{% endif %}
                       as amount_difference_minor,
                   {{ minutes_apart('g.last_event_at', 't.event_at') }} as minutes_apart
            from groups as g inner join targets as t
                on t.{{ key }} = g.group_key and t.occurrence = 1
            where abs(t.target_amount - g.group_amount) <= {{ rule.get('amount_tolerance_minor', 0) }}
        )
        select {% if many_right %}p.one_key as left_key, many.transaction_key as right_key{% else %}many.transaction_key as left_key, p.one_key as right_key{% endif %},
               p.amount_difference_minor, p.minutes_apart
        from paired as p inner join {{ many_rows }} as many on many.{{ key }} = p.group_key
    {%- else -%}
        {{ exceptions.raise_compiler_error("unknown rule kind " ~ rule['kind']) }}
    {%- endif -%}
{%- endmacro %}

{# The whole waterfall for one project: CTEs pass by pass over the rows still unmatched, after
   the pairs people made (manual_pairs), and never a pair people unmade (an approved unmatch:
   it takes effect when the date the rule paired them is run again). #}
{% macro recon_waterfall(project, open_rows) -%}
    {%- set name = project['project'] -%}
    select * from (
    with manual as (
        {{ manual_pairs(name, open_rows) }}
    ),
    -- pairs a person said a rule made wrongly (approved unmatch): no rule makes them again
    unmatched_by_person as (
        select l.key as left_key, r.key as right_key
        from {{ source('workbench', 'approved_decisions') }} as d
        cross join lateral unnest(d.left_keys) as l (key)
        cross join lateral unnest(d.right_keys) as r (key)
        where d.action = 'unmatch' and d.project = '{{ name }}'
    ),
    left_0 as (
        select * from {{ open_rows }} as rows
        where project = '{{ name }}' and recon_side = 'left' and out_of_reach is not true
          and not exists (select 1 from manual as m where m.left_key = rows.transaction_key)
    ),
    right_0 as (
        select * from {{ open_rows }} as rows
        where project = '{{ name }}' and recon_side = 'right' and out_of_reach is not true
          and not exists (select 1 from manual as m where m.right_key = rows.transaction_key)
    ),
    {%- for rule in project['rules'] %}
    {%- set i = loop.index %}
    pass_{{ i }} as (
        select * from (
            {{ recon_pass(rule, 'left_' ~ (i - 1), 'right_' ~ (i - 1)) }}
        ) as found
        where not exists (
            select 1 from unmatched_by_person as u
            where u.left_key = found.left_key and u.right_key = found.right_key)
    ),
    left_{{ i }} as (
        select * from left_{{ i - 1 }} as rows
        where not exists (select 1 from pass_{{ i }} as p where p.left_key = rows.transaction_key)
    ),
    right_{{ i }} as (
        select * from right_{{ i - 1 }} as rows
        where not exists (select 1 from pass_{{ i }} as p where p.right_key = rows.transaction_key)
    ),
    {%- endfor %}
    all_pairs as (
        -- a person's match (pass 0) says nothing of the dates' distance: never a timing break
        select '{{ name }}' as project, 0 as pass, 'manual' as rule, 'manual' as rule_kind,
               left_key, right_key, amount_difference_minor, minutes_apart,
               null::integer as expected_days_apart, decision_id
        from manual
        {%- for rule in project['rules'] %}
        union all
        select '{{ name }}' as project, {{ loop.index }} as pass, '{{ rule['rule'] }}' as rule,
               '{{ rule['kind'] }}' as rule_kind, left_key, right_key, amount_difference_minor,
               minutes_apart, {{ rule.get('expected_days_apart', 0) }} as expected_days_apart,
               null::bigint as decision_id
        from pass_{{ loop.index }}
        {%- endfor %}
    )
    select * from all_pairs
    ) as waterfall_{{ name }}
{%- endmacro %}

{# The pairs people made in the workbench (approved manual matches, workbench.approved_decisions)
   among a project's open rows: pass 0, before any rule, so that re-running a date, or any later
   one, keeps them. A decision applies on the date every row it names is open on its side (in
   reach or not: a person chose them), and once: the earliest decision claims a row that a later
   one names too. One to one, one to many or many to one: each left row with each right row,
   every pair carrying the group's difference (right minus left). #}
{% macro manual_pairs(name, open_rows) -%}
    with decided as (
        select decision_id, left_keys, right_keys
        from {{ source('workbench', 'approved_decisions') }}
        where action = 'manual_match' and project = '{{ name }}'
    ),
    named as (
        select d.decision_id, 'left' as recon_side, k.key
        from decided as d cross join lateral unnest(d.left_keys) as k (key)
        union all
        select d.decision_id, 'right', k.key
        from decided as d cross join lateral unnest(d.right_keys) as k (key)
    ),
    found as (
        select n.decision_id, n.recon_side, n.key, o.amount_minor, o.event_at,
               min(n.decision_id) over (partition by n.recon_side, n.key) as first_claim
        from named as n
        left join {{ open_rows }} as o
            on o.project = '{{ name }}' and o.recon_side = n.recon_side
            and o.transaction_key = n.key
    ),
    applicable as (
        select decision_id,
               sum(amount_minor) filter (where recon_side = 'right')
                 - sum(amount_minor) filter (where recon_side = 'left') as difference_minor
        from found
        group by decision_id
        having bool_and(amount_minor is not null and first_claim = decision_id)
           and count(*) filter (where recon_side = 'left') >= 1
           and count(*) filter (where recon_side = 'right') >= 1
    )
    select l.key as left_key, r.key as right_key, a.difference_minor as amount_difference_minor,
           {{ minutes_apart('l.event_at', 'r.event_at') }} as minutes_apart, a.decision_id
    from applicable as a
    inner join found as l on l.decision_id = a.decision_id and l.recon_side = 'left'
    inner join found as r on r.decision_id = a.decision_id and r.recon_side = 'right'
{%- endmacro %}


{# The opposite reconciliation side of a row, as an expression usable as a hash-join key. #}
{% macro other_side(alias) -%}
    (case when {{ alias }}.recon_side = 'left' then 'right' else 'left' end)
{%- endmacro %}

{# Rows of text values from the configuration as a relation: `values (...), ...`, or no row of
   `width` text columns when there are none. #}
{% macro text_rows(rows, width) -%}
    {%- if rows -%}
    values {% for row in rows %}({% for value in row %}'{{ value }}'{% if not loop.last %}, {% endif %}{% endfor %}){% if not loop.last %}, {% endif %}{% endfor %}
    {%- else -%}
    select {% for _ in range(width) %}null::text{% if not loop.last %}, {% endif %}{% endfor %} where false
    {%- endif -%}
{%- endmacro %}

{# The open-items engine. A run of date as_of reads the items still open at the end of the last
   date reconciled before it (`since`: the latest date with a state in int_recon__days) and the
   canonical rows of the dates after it up to as_of, and nothing older. Without any earlier
   state (the first run), every date up to as_of is new. #}
{% macro since() -%}
    {%- set day = none -%}
    {%- if execute -%}
        {%- set days = adapter.get_relation(database=target.database, schema='intermediate',
                                            identifier='int_recon__days') -%}
        {%- if days is not none -%}
            {%- set found = run_query("select max(as_of_date)::text from " ~ days
                                      ~ " where as_of_date < " ~ as_of()) -%}
            {%- set day = found.columns[0].values()[0] -%}
        {%- endif -%}
    {%- endif -%}
    {{ return(day) }}
{%- endmacro %}

{# Rows of the dates this run builds: after `since`, up to as_of. #}
{% macro new_days(column='business_date') -%}
    {%- set day = since() -%}
    {%- if day -%}
        {{ column }} > '{{ day }}'::date and {{ column }} <= {{ as_of() }}
    {%- else -%}
        {{ column }} <= {{ as_of() }}
    {%- endif -%}
{%- endmacro %}

{# For a row carried from an earlier date (alias `c`): true when no rule of the project can pair
   it with any of the new rows, so the waterfall need not read it (it stays open, and is still
   classified). New rows are dated after every carried row: a rule bounded by max_days_apart
   reaches back that many days from the first new date, a tolerance rule as far as its time
   window from the other side's earliest new row (`earliest_other`, null when that side has no
   new row). A group rule sums rows of any date, so it keeps every carried row in reach. Two
   carried rows were already tried against each other on the days they were both open. #}
{% macro out_of_reach(project, first_new_date, c='c', earliest_other='n.earliest_event_at') -%}
    {%- set reach = [] -%}
    {%- for rule in project['rules'] -%}
        {%- if rule['kind'] == 'group' -%}
            {{ return('false') }}
        {%- endif -%}
        {%- set bounds = [] -%}
        {%- if rule.get('max_days_apart') is not none -%}
            {%- do bounds.append(c ~ '.business_date >= ' ~ first_new_date ~ ' - ' ~ (rule['max_days_apart'] | int)) -%}
        {%- endif -%}
        {%- if rule['kind'] == 'tolerance' -%}
            {%- do bounds.append(c ~ ".event_at >= " ~ earliest_other ~ " - interval '"
                                 ~ (rule.get('time_window_minutes', 1440) | int) ~ " minutes'") -%}
        {%- endif -%}
        {%- do reach.append('(' ~ (bounds | join(' and ') if bounds else 'true') ~ ')') -%}
    {%- endfor -%}
    not coalesce({{ earliest_other }} is not null and ({{ reach | join(' or ') if reach else 'false' }}), false)
{%- endmacro %}

{# The columns an open row's explanation looks rows up by (fct_outcomes): each project's
   explain key, and the order number (a refund's paid order). int_transactions is indexed on
   each. #}
{% macro lookup_keys() -%}
    {%- set keys = ['merchant_order_no'] -%}
    {%- for project in recon_config()['projects'] -%}
        {%- set key = project.get('explain_key', 'reference') -%}
        {%- if key not in keys -%}{%- do keys.append(key) -%}{%- endif -%}
    {%- endfor -%}
    {{ return(keys) }}
{%- endmacro %}

{# The canonical transaction's columns (int_transactions), in order: those every source part
   has, those only some parts have (null in the others, with their type), those derived. The
   scope and the open items carry them all. #}
{% macro transaction_columns() -%}
    {{ return({
        'base': ['transaction_key', 'source', 'side', 'kind', 'account', 'counterparty',
                 'reference', 'merchant_order_no', 'channel_txn_no', 'bank_serial',
                 'settlement_batch', 'channel', 'direction', 'amount_minor', 'fee_minor',
                 'currency', 'status', 'event_at', 'business_date', 'file_id', 'line_no'],
        'extra': {'counterparty_account': 'text', 'remittance': 'text', 'row_count': 'bigint',
                  'original_order_no': 'text', 'paid_bill_date': 'date'},
        'derived': ['signed_amount_minor', 'net_amount_minor', 'account_role'],
    }) }}
{%- endmacro %}

{% macro transaction_column_names() -%}
    {%- set c = transaction_columns() -%}
    {{ return(c['base'] + (c['extra'].keys() | list) + c['derived']) }}
{%- endmacro %}

{# The open-items state (int_recon__open_items) by name: the scope reads an earlier date of it,
   and a ref would make the scope depend on its own output. #}
{# The workbench's actions that close an item: it leaves the open items (outcome resolved). #}
{% macro resolving_actions() -%}
    ('mark_normal', 'write_off', 'adjustment')
{%- endmacro %}

{% macro open_items_relation() -%}
    {{ return(api.Relation.create(database=target.database, schema='intermediate',
                                  identifier='int_recon__open_items')) }}
{%- endmacro %}

{# A pre-hook for a model kept by date: delete the rows this run rebuilds (those `condition`
   selects) before its new rows are appended, in the same transaction. Unlike delete+insert
   on a unique key, it also empties a date that now has no rows at all. #}
{% macro replace_rows(condition) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ condition }}
    {%- endif -%}
{%- endmacro %}

{# PostgreSQL compiles the plan of an expensive query to machine code before running it (JIT,
   above jit_above_cost). For the reconciliation models the compiling took longer than the
   query: 14.8 s for a 14.3 s fct_outcomes at 100,000 transactions a day after two weeks, and
   it grew with the history, whose statistics raise the estimated cost past the optimising
   threshold. Turned off for the model's own transaction; other adapters have nothing to do. #}
{% macro no_jit() -%}
    {{ return(adapter.dispatch('no_jit')()) }}
{%- endmacro %}

{% macro default__no_jit() -%}
{%- endmacro %}

{% macro postgres__no_jit() -%}
    set local jit = off
{%- endmacro %}

{# An index on a table built incrementally, named <table>_by_<column>: dbt creates a model's
   configured indexes only when it creates the table, so an index added later would never
   reach a warehouse built before it. Created here if missing, on every run (a lookup when
   present). #}
{% macro index_on(column) -%}
    create index if not exists {{ this.identifier }}_by_{{ column }} on {{ this }} ({{ column }})
{%- endmacro %}

{# The gate's index of earlier releases (year, month and day of as_of_date), no longer read:
   dropped where a warehouse still has it, so that no insert keeps it up. #}
{% macro drop_gate_day_index() -%}
    drop index if exists {{ this.schema }}.{{ this.identifier }}_by_gate_day
{%- endmacro %}
