-- For each business date (as_of_date) and project: every row still open that day (arrived by
-- then, not matched on an earlier date) with exactly one outcome:
--   matched   paired today by a rule (a pair across business dates is also a `timing` break),
--             or by a person's approved manual match (rule `manual`, decision_id)
--   suspense  in flight (still `processing` on its own side, or a kind that waits by design,
--             `in_flight_days`), or waiting for a counterpart source not received for its date
--             (`awaiting`): nothing is a break on a side that was never received
--   break     a difference a person must look at, typed by break_type: a row settled on its
--             own side with no counterpart is a break on its own day (the seed design's rule)
--   resolved  a break a person closed in the workbench (an approved mark_normal, write_off or
--             adjustment: rule names it, decision_id the decision); not carried further
-- Every unmatched row carries an explanation naming its nearest candidate.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ replace_rows('as_of_date = ' ~ as_of()) }}",
    full_refresh=false,
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['as_of_date', 'project', 'transaction_key']}],
    post_hook=["{{ drop_gate_day_index() }}", "analyze {{ this }}"],
) }}
{%- set config = recon_config() %}
{%- set in_flight = config.get('in_flight_days', {}) %}
{#- What a classification was made by: the rules and this model's code. An item keeps an earlier
    date's classification only if the same made it (a change to either classifies every open
    item again, once). #}
{%- set classified_by = local_md5(tojson(config, sort_keys=true) ~ model.raw_code) %}

with scope as not materialized (
    select * from {{ ref('int_recon__scope') }}
),

-- Open rows (carried or new) that no rule paired today either: the day's open items.
unmatched as not materialized (
    select * from {{ ref('int_recon__open_items') }} where as_of_date = {{ as_of() }}
),

matches as not materialized (
    select * from {{ ref('fct_matches') }} where as_of_date = {{ as_of() }}
),

-- Today's pairs seen from each side; a group's one row stands for several on the other side.
matched_today as not materialized (
    select project, left_key as transaction_key, min(right_key) as counterpart_key,
           min(rule) as rule, min(pass) as pass,
           min(amount_difference_minor) as amount_difference_minor,
           bool_or(abs(left_business_date - right_business_date) > expected_days_apart)
               as across_dates,
           bool_or(left_status = 'processing' and right_status = 'success') as status_corrected,
           min(decision_id) as decision_id
    from matches
    group by project, left_key
    union all
    select project, right_key, min(left_key), min(rule), min(pass),
           min(amount_difference_minor),
           bool_or(abs(left_business_date - right_business_date) > expected_days_apart),
           bool_or(left_status = 'processing' and right_status = 'success'),
           min(decision_id)
    from matches
    group by project, right_key
),

{%- set state_date = since() if is_incremental() else none %}
{%- if state_date %}

-- An item carried open from the last reconciled date keeps that date's classification when
-- nothing it depends on moved today: it was a break (no longer waiting for a source or in
-- flight; not a status mismatch, whose row of the same reference may be paired by another
-- key), no new row shares its reference (the project's explain key) or its order number, its
-- counterpart was not paired today, no row of the other side with its amount arrived or was
-- paired today (its nearest row of the same amount), and the same rules and code classified
-- it (classified_by). Its candidates are the rows up to the date, yesterday's plus today's new
-- ones, so the lookups below would find the same: only its age moves. A day then classifies
-- its new rows and the items something touched, not every item ever left open.
previous as not materialized (
    select * from {{ this }} where as_of_date = '{{ state_date }}'::date
),

-- Every value of the lookup keys among the new rows, read in one pass over them (a value may
-- repeat: it is only looked up, and sorting out the repeats cost more than the lookups).
new_keys as materialized (
    select keys.value
    from {{ ref('int_transactions') }} as t
    cross join lateral unnest(array[
        {%- for key in lookup_keys() %}t.{{ key }}{% if not loop.last %}, {% endif %}{% endfor -%}
    ]) as keys (value)
    where {{ new_days('t.business_date') }} and keys.value is not null
),

-- The amounts that moved today: every new row's, and each carried row's paired today (a new
-- row paired today is a new row already). Repeats are harmless here too; read from the scope
-- where it is used, so that the planner sees the scope's statistics.
moved_amounts as not materialized (
    select project, recon_side, amount_minor, currency, direction
    from scope where opened_on = {{ as_of() }}
    union all
    select s.project, s.recon_side, s.amount_minor, s.currency, s.direction
    from scope as s
    inner join matched_today as m
        on m.project = s.project and m.transaction_key = s.transaction_key
    where s.opened_on < {{ as_of() }}
),

-- The carried items with what the checks below need of their last classification, joined on
-- the key alone so that the planner counts them right (a filter on several of the
-- classification's columns at once is estimated at a few rows, and the checks below then run
-- as loops over the day's new keys: three minutes at 100,000 a day); the conditions come after
-- the checks. Narrow rows: the checks sort and hash every open item carried (a hundred
-- thousand after a month of breaks nobody worked), and whole rows made them the model's
-- largest cost; the settled items' rows are read once, at the end.
carried as materialized (
    select p.project, p.transaction_key, p.recon_side, p.counterpart_key, p.amount_minor,
           p.currency, p.direction, p.outcome, p.awaiting, p.break_type, p.classified_by,
           u.match_ref as carried_match_ref,
           u.merchant_order_no as carried_merchant_order_no,
           u.resolved_by
    from unmatched as u
    inner join previous as p
        on p.project = u.project and p.transaction_key = u.transaction_key
    where u.opened_on < {{ as_of() }}
),

untouched as materialized (
    select c.*
    from carried as c
    where not exists (select 1 from new_keys as k where k.value = c.carried_match_ref)
      and not exists (select 1 from new_keys as k where k.value = c.carried_merchant_order_no)
      and not exists (
          select 1 from matched_today as m
          where m.project = c.project and m.transaction_key = c.counterpart_key)
      and not exists (
          select 1 from moved_amounts as a
          where a.project = c.project and a.recon_side = {{ other_side('c') }}
            and a.amount_minor = c.amount_minor and a.currency = c.currency
            and a.direction = c.direction)
),

settled as materialized (
    select project, transaction_key from untouched
    where outcome = 'break' and awaiting is null and break_type <> 'status_mismatch'
      and classified_by = '{{ classified_by }}' and resolved_by is null
),
{%- endif %}

-- The open items classified today: all but the settled.
fresh as materialized (
    select * from unmatched as u
    {%- if state_date %}
    where not exists (
        select 1 from settled as s
        where s.project = u.project and s.transaction_key = u.transaction_key)
    {%- endif %}
),

-- The rows with the same reference (the project's explain key) on the other side, whatever
-- their state: looked up in the canonical rows up to the date by that key (an index), so a
-- second copy of a row paired long ago is still found, without reading the history.
reference_candidates as not materialized (
    {%- for project in config['projects'] %}
    {%- set key = project.get('explain_key', 'reference') %}
    {%- for side, other in [('left', 'right'), ('right', 'left')] %}
    select
        u.project, u.transaction_key, c.transaction_key as candidate_key,
        c.source as candidate_source, c.reference as candidate_reference,
        c.amount_minor as candidate_amount_minor,
        c.business_date as candidate_business_date,
        c.amount_minor - u.amount_minor as difference_minor,
        abs(extract(epoch from c.event_at - u.event_at)) as seconds_apart
    from fresh as u
    inner join (
        select * from {{ ref('int_transactions') }}
        where status <> 'failed' and ({{ project[other] }})
    ) as c
        on c.{{ key }} = u.match_ref and c.direction = u.direction
        and c.business_date <= {{ as_of() }}
    where u.project = '{{ project["project"] }}' and u.recon_side = '{{ side }}'
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

-- The nearest of them; a candidate that is not among the open items was paired by a rule.
same_reference as materialized (
    select
        c.*,
        cu.transaction_key is null as candidate_matched,
        row_number() over (
            partition by c.project, c.transaction_key
            order by abs(c.difference_minor), c.seconds_apart, c.candidate_key
        ) as nearness
    from reference_candidates as c
    left join unmatched as cu
        on cu.project = c.project and cu.transaction_key = c.candidate_key
),

-- Else the nearest unmatched row of the same amount on the other side.
same_amount as not materialized (
    select
        u.project,
        u.transaction_key,
        c.reference as candidate_reference,
        round(abs(extract(epoch from c.event_at - u.event_at)) / 60.0) as minutes_apart,
        row_number() over (
            partition by u.project, u.transaction_key
            order by abs(extract(epoch from c.event_at - u.event_at)), c.transaction_key
        ) as nearness
    from fresh as u
    inner join unmatched as c
        on c.project = u.project and c.recon_side = {{ other_side('u') }}
        and c.amount_minor = u.amount_minor and c.currency = u.currency
        and c.direction = u.direction
),

-- Rows the reconciliation leaves out (failed on the platform) still explain a counterpart that
-- moved money: a failed row of the other side with the same reference, direction and amount,
-- up to the date, looked up by reference.
failed_counterpart as materialized (
    select distinct on (f.project, f.transaction_key) *
    from (
        {%- for project in config['projects'] %}
        {%- set key = project.get('explain_key', 'reference') %}
        {%- for side, other in [('left', 'right'), ('right', 'left')] %}
        select u.project, u.transaction_key, t.transaction_key as failed_key,
               t.source as failed_source, t.reference as failed_reference,
               t.amount_minor as failed_amount_minor, t.business_date as failed_business_date
        from fresh as u
        inner join (
            select * from {{ ref('int_transactions') }}
            where status = 'failed' and ({{ project[other] }})
        ) as t
            on t.{{ key }} = u.match_ref and t.direction = u.direction
            and t.amount_minor = u.amount_minor and t.currency = u.currency
            and t.business_date <= {{ as_of() }}
        where u.project = '{{ project["project"] }}' and u.recon_side = '{{ side }}'
        {% if not loop.last %}union all{% endif %}
        {%- endfor %}
        {% if not loop.last %}union all{% endif %}
        {%- endfor %}
    ) as f
    order by f.project, f.transaction_key, f.failed_key
),

-- A refund on the statement side of an order the platform holds as paid in full and never
-- refunded (a refund made in the channel's merchant console): the order's status differs.
-- The order is looked up by its number among the platform's rows up to the date.
refunded_elsewhere as materialized (
    select distinct on (e.project, e.transaction_key) *
    from (
        {%- for project in config['projects'] %}
        select u.project, u.transaction_key, p.transaction_key as order_key,
               p.source as order_source, p.reference as order_reference,
               p.amount_minor as order_amount_minor, p.business_date as order_business_date
        from fresh as u
        inner join (
            select * from {{ ref('int_transactions') }}
            where status <> 'failed' and side = 'platform' and ({{ project['left'] }})
        ) as p
            on p.merchant_order_no = u.merchant_order_no and p.kind = 'payment'
            and p.amount_minor = u.amount_minor and p.currency = u.currency
            and p.business_date <= {{ as_of() }}
        where u.project = '{{ project["project"] }}' and u.recon_side = 'right'
          and u.kind = 'refund'
          and not exists (
              select 1 from (
                  select * from {{ ref('int_transactions') }}
                  where status <> 'failed' and side = 'platform' and ({{ project['left'] }})
              ) as r
              where r.merchant_order_no = u.merchant_order_no and r.kind = 'refund'
                and r.business_date <= {{ as_of() }})
        {% if not loop.last %}union all{% endif %}
        {%- endfor %}
    ) as e
    order by e.project, e.transaction_key, e.order_key
),

-- The sources each side of a project comes from (`sources` in the configuration): a row waits
-- while a source of the other side has no loaded file for the row's date.
expected_sources (project, recon_side, source) as (
    {%- set expected = [] %}
    {%- for project in config['projects'] %}
    {%- for side, sources in project.get('sources', {}).items() %}
    {%- for source in sources %}
    {%- set _ = expected.append([project['project'], side, source]) %}
    {%- endfor %}
    {%- endfor %}
    {%- endfor %}
    {{ text_rows(expected, 3) }}
),

-- Each channel's bill sources: a payout waits for its channel's bill of the day it pays.
channel_bills (channel, source) as (
    {%- set bills = [] %}
    {%- for channel, sources in config.get('channel_bills', {}).items() %}
    {%- for source in sources %}
    {%- set _ = bills.append([channel, source]) %}
    {%- endfor %}
    {%- endfor %}
    {{ text_rows(bills, 2) }}
),

awaited as not materialized (
    select u.project, u.transaction_key, e.source, u.business_date as awaited_date
    from fresh as u
    inner join expected_sources as e
        on e.project = u.project and e.recon_side = {{ other_side('u') }}
    union all
    select u.project, u.transaction_key, b.source, u.paid_bill_date
    from fresh as u
    inner join channel_bills as b on b.channel = u.channel
    where u.paid_bill_date is not null
),

awaiting as not materialized (
    select a.project, a.transaction_key,
           string_agg(a.source, ', ' order by a.source) as awaiting,
           min(a.awaited_date) as awaited_date
    from awaited as a
    where not exists (
        select 1 from {{ source('tally', 'files') }} as f
        where f.source = a.source and f.business_date = a.awaited_date
          and f.status = 'loaded')
    group by a.project, a.transaction_key
),

classified as not materialized (
    select
        u.*,
        {{ as_of() }} - u.business_date as age_days,
        -- a project's own in_flight_days wins over the kind's
        case
            {%- for project in config['projects'] if project.get('in_flight_days') is not none %}
            when u.project = '{{ project["project"] }}' then {{ project['in_flight_days'] }}
            {%- endfor %}
            {%- for kind, days in in_flight.items() %}
            when u.kind = '{{ kind }}' then {{ days }}
            {%- endfor %}
            else 0
        end as in_flight_days,
        r.candidate_key,
        r.difference_minor,
        r.candidate_matched,
        a.candidate_reference,
        a.minutes_apart,
        f.failed_key,
        e.order_key,
        w.awaiting,
        w.awaited_date
    from fresh as u
    left join same_reference as r
        on r.project = u.project and r.transaction_key = u.transaction_key and r.nearness = 1
    left join same_amount as a
        on a.project = u.project and a.transaction_key = u.transaction_key and a.nearness = 1
    left join failed_counterpart as f
        on f.project = u.project and f.transaction_key = u.transaction_key
    left join refunded_elsewhere as e
        on e.project = u.project and e.transaction_key = u.transaction_key
    left join awaiting as w
        on w.project = u.project and w.transaction_key = u.transaction_key
),

unmatched_outcomes as not materialized (
    select
        classified.*,
        case
            when candidate_key is not null and difference_minor = 0 and candidate_matched
                then 'duplicate'
            when candidate_key is not null and difference_minor <> 0 then 'amount_mismatch'
            when failed_key is not null or order_key is not null then 'status_mismatch'
            -- a credit from a channel's payer that pays no bill day: not a customer's 长款
            when kind = 'unidentified_settlement' then 'unidentified_settlement'
            when recon_side = 'left' then 'missing_on_statement'
            else 'missing_on_platform'
        end as break_type,
        case
            -- closed by a person's approved decision (the break type still says what it was)
            when resolved_by is not null then 'resolved'
            when candidate_key is not null and (difference_minor <> 0 or candidate_matched)
                then 'break'
            when failed_key is not null or order_key is not null then 'break'
            when status = 'processing' then 'suspense'
            when awaiting is not null then 'suspense'
            when age_days < in_flight_days then 'suspense'
            else 'break'
        end as outcome,
        case
            when resolved_by is not null
                then 'resolved by decision ' || resolved_by || ' (' || resolution || ')'
            when candidate_key is not null and difference_minor = 0 and candidate_matched
                then 'same reference ' || match_ref || ' and amount as a row already matched: a second copy'
            when candidate_key is not null and difference_minor <> 0
                then 'same reference ' || match_ref || ', amount differs by '
                     || to_char(difference_minor / 100.0, 'FM999999999990.00')
            when failed_key is not null
                then 'reference ' || match_ref || ' is failed on the '
                     || case when recon_side = 'left' then 'statement' else 'platform' end
                     || ' side, but money moved'
            when order_key is not null
                then 'order ' || merchant_order_no || ' refunded in full here; the platform holds it as paid'
            when kind = 'unidentified_settlement'
                then 'a payout from ' || coalesce(channel, 'a channel') || '''s payer that fits no bill day'
                     || ' within its expected delay'
            when awaiting is not null
                then 'awaiting ' || awaiting || ' for ' || to_char(awaited_date, 'YYYY-MM-DD')
                     || ' (not received)'
            when candidate_key is not null
                then 'same reference ' || match_ref || ' and amount, outside the date window'
            when candidate_reference is not null
                then 'no counterpart with reference ' || coalesce(match_ref, '(none)')
                     || '; nearest with the same amount: ' || coalesce(candidate_reference, '(no reference)')
                     || ', ' || minutes_apart || ' min apart'
            else 'no counterpart with reference ' || coalesce(match_ref, '(none)')
                 || ' or amount ' || to_char(amount_minor / 100.0, 'FM999999999990.00')
        end as explanation,
        coalesce(failed_key, order_key, candidate_key) as counterpart
    from classified
),

-- Every open row once: paired today (from the scope, with its pair) or not (classified).
open_rows as not materialized (
    select
        o.project, o.transaction_key, o.recon_side, o.side, o.source, o.kind, o.reference,
        o.account, o.direction, o.amount_minor, o.currency, o.status, o.event_at,
        o.business_date, o.file_id, o.line_no, o.row_count,
        'matched' as outcome,
        case
            when m.across_dates then 'timing'
            when m.status_corrected then 'status_mismatch'
        end as break_type,
        m.rule, m.pass, m.counterpart_key, m.amount_difference_minor, m.status_corrected,
        null::text as explanation, null::text as awaiting, m.decision_id
    from matched_today as m
    inner join scope as o
        on o.project = m.project and o.transaction_key = m.transaction_key
    union all
    select
        u.project, u.transaction_key, u.recon_side, u.side, u.source, u.kind, u.reference,
        u.account, u.direction, u.amount_minor, u.currency, u.status, u.event_at,
        u.business_date, u.file_id, u.line_no, u.row_count,
        u.outcome, u.break_type,
        u.resolution, null, u.counterpart, u.difference_minor, false, u.explanation, u.awaiting,
        u.resolved_by
    from unmatched_outcomes as u
),

-- The counterpart's own details, so that a difference names both sides: a pair's from the
-- day's scope, an open row's from the lookup that found it (a failed row is not in the scope).
-- Built from those alone, so the day's outcomes are classified once.
counterparts as not materialized (
    select distinct on (transaction_key)
        transaction_key, source, reference, amount_minor, business_date
    from (
        select s.transaction_key, s.source, s.reference, s.amount_minor, s.business_date
        from scope as s
        inner join matched_today as m
            on m.project = s.project and m.counterpart_key = s.transaction_key
        where m.across_dates or m.status_corrected
        union all
        select candidate_key, candidate_source, candidate_reference, candidate_amount_minor,
               candidate_business_date
        from same_reference where nearness = 1
        union all
        select failed_key, failed_source, failed_reference, failed_amount_minor,
               failed_business_date
        from failed_counterpart
        union all
        select order_key, order_source, order_reference, order_amount_minor,
               order_business_date
        from refunded_elsewhere
    ) as found
    order by transaction_key
),

-- For a second copy: the row it repeats, i.e. the row its candidate was paired with (on this
-- date or before), looked up by the candidate's key.
repeated as not materialized (
    select
        d.project, d.candidate_key,
        coalesce(
            (select min(m.right_key) from {{ ref('fct_matches') }} as m
             where m.project = d.project and m.left_key = d.candidate_key
               and m.as_of_date <= {{ as_of() }}),
            (select min(m.left_key) from {{ ref('fct_matches') }} as m
             where m.project = d.project and m.right_key = d.candidate_key
               and m.as_of_date <= {{ as_of() }})) as repeats_key
    from (select distinct project, candidate_key from same_reference
          where nearness = 1 and difference_minor = 0 and candidate_matched) as d
)

select
    {{ as_of() }} as as_of_date,
    o.project,
    o.transaction_key,
    o.recon_side,
    o.side,
    o.source,
    o.kind,
    o.reference,
    o.account,
    o.direction,
    o.amount_minor,
    o.currency,
    o.status,
    o.event_at,
    o.business_date,
    {{ as_of() }} - o.business_date as age_days,
    o.outcome,
    o.break_type,
    o.rule,
    o.pass,
    o.counterpart_key,
    c.source as counterpart_source,
    c.reference as counterpart_reference,
    c.amount_minor as counterpart_amount_minor,
    c.business_date as counterpart_business_date,
    case when o.break_type = 'duplicate' then r.repeats_key end as repeats_key,
    o.amount_difference_minor,
    o.status_corrected,
    o.awaiting,
    o.explanation,
    o.row_count,
    o.file_id,
    o.line_no,
    '{{ classified_by }}' as classified_by,
    o.decision_id
from open_rows as o
left join counterparts as c
    on c.transaction_key = o.counterpart_key
    and (o.outcome <> 'matched' or o.break_type is not null)
left join repeated as r
    on o.break_type = 'duplicate' and r.project = o.project
    and r.candidate_key = o.counterpart_key

{%- if state_date %}
union all
-- The settled items, as classified on the last reconciled date, a day older.
select
    {{ as_of() }} as as_of_date,
    s.project,
    s.transaction_key,
    s.recon_side,
    s.side,
    s.source,
    s.kind,
    s.reference,
    s.account,
    s.direction,
    s.amount_minor,
    s.currency,
    s.status,
    s.event_at,
    s.business_date,
    {{ as_of() }} - s.business_date as age_days,
    s.outcome,
    s.break_type,
    s.rule,
    s.pass,
    s.counterpart_key,
    s.counterpart_source,
    s.counterpart_reference,
    s.counterpart_amount_minor,
    s.counterpart_business_date,
    s.repeats_key,
    s.amount_difference_minor,
    s.status_corrected,
    s.awaiting,
    s.explanation,
    s.row_count,
    s.file_id,
    s.line_no,
    s.classified_by,
    -- a settled item is an open break: no decision paired it
    null::bigint as decision_id
from previous as s
inner join settled as k
    on k.project = s.project and k.transaction_key = s.transaction_key
{%- endif %}
