-- For each business date (as_of_date) and project: every row still open that day (arrived by
-- then, not matched on an earlier date) with exactly one outcome:
--   matched   paired today by a rule (a pair across business dates is also a `timing` break)
--   suspense  in flight (still `processing` on its own side, or a kind that waits by design,
--             `in_flight_days`), or waiting for a counterpart source not received for its date
--             (`awaiting`): nothing is a break on a side that was never received
--   break     a difference a person must look at, typed by break_type: a row settled on its
--             own side with no counterpart is a break on its own day (the seed design's rule)
-- Every unmatched row carries an explanation naming its nearest candidate.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='as_of_date',
    full_refresh=false,
    post_hook="analyze {{ this }}",
) }}
{%- set config = recon_config() %}
{%- set in_flight = config.get('in_flight_days', {}) %}

with scope as not materialized (
    select * from {{ ref('int_recon__scope') }}
),

-- Open rows (not paired on an earlier date) that no rule paired today either.
unmatched as not materialized (
    select * from {{ ref('int_recon__unmatched') }}
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
           bool_or(left_status = 'processing' and right_status = 'success') as status_corrected
    from matches
    group by project, left_key
    union all
    select project, right_key, min(left_key), min(rule), min(pass),
           min(amount_difference_minor),
           bool_or(abs(left_business_date - right_business_date) > expected_days_apart),
           bool_or(left_status = 'processing' and right_status = 'success')
    from matches
    group by project, right_key
),

-- The nearest row with the same reference (the project's explain key) on the other side,
-- whatever its state.
same_reference as not materialized (
    select
        u.project,
        u.transaction_key,
        c.transaction_key as candidate_key,
        c.amount_minor - u.amount_minor as difference_minor,
        -- a candidate in scope that is not unmatched was paired by a rule
        cu.transaction_key is null as candidate_matched,
        row_number() over (
            partition by u.project, u.transaction_key
            order by abs(c.amount_minor - u.amount_minor),
                     abs(extract(epoch from c.event_at - u.event_at)), c.transaction_key
        ) as nearness
    from unmatched as u
    inner join scope as c
        -- the other side as an equality: a hash join key, even when thousands share a key
        on c.project = u.project and c.recon_side = {{ other_side('u') }}
        and c.match_ref = u.match_ref and c.direction = u.direction
    left join unmatched as cu
        on cu.project = c.project and cu.transaction_key = c.transaction_key
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
    from unmatched as u
    inner join unmatched as c
        on c.project = u.project and c.recon_side = {{ other_side('u') }}
        and c.amount_minor = u.amount_minor and c.currency = u.currency
        and c.direction = u.direction
),

-- Rows the reconciliation leaves out (failed on the platform) still explain a counterpart that
-- moved money: within the project's conditions, as far back as a counterpart may look.
failed as not materialized (
    select * from (
    {%- for project in config['projects'] %}
    {%- set match_ref = project.get('explain_key', 'reference') %}
    select '{{ project["project"] }}' as project, 'left' as recon_side,
           t.{{ match_ref }} as match_ref, t.transaction_key, t.direction, t.amount_minor,
           t.currency, t.business_date
    from {{ ref('int_transactions') }} as t
    where t.status = 'failed' and t.business_date <= {{ as_of() }} and ({{ project['left'] }})
    union all
    select '{{ project["project"] }}', 'right', t.{{ match_ref }}, t.transaction_key,
           t.direction, t.amount_minor, t.currency, t.business_date
    from {{ ref('int_transactions') }} as t
    where t.status = 'failed' and t.business_date <= {{ as_of() }} and ({{ project['right'] }})
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
    ) as failed_rows
),

-- A counterpart the other side holds as failed: money moved while that side thinks it did not.
failed_counterpart as not materialized (
    select u.project, u.transaction_key, min(f.transaction_key) as failed_key
    from unmatched as u
    inner join failed as f
        on f.project = u.project and f.recon_side = {{ other_side('u') }}
        and f.match_ref = u.match_ref and f.direction = u.direction
        and f.amount_minor = u.amount_minor and f.currency = u.currency
    group by u.project, u.transaction_key
),

-- A refund on the statement side of an order the platform holds as paid in full and never
-- refunded (a refund made in the channel's merchant console): the order's status differs.
refunded_elsewhere as not materialized (
    select u.project, u.transaction_key, min(p.transaction_key) as order_key
    from unmatched as u
    inner join scope as p
        on p.project = u.project and p.recon_side = 'left' and p.kind = 'payment'
        and p.merchant_order_no = u.merchant_order_no and p.amount_minor = u.amount_minor
        and p.currency = u.currency
    where u.recon_side = 'right' and u.kind = 'refund'
      and not exists (
          select 1 from scope as r
          where r.project = u.project and r.recon_side = 'left' and r.kind = 'refund'
            and r.merchant_order_no = u.merchant_order_no)
    group by u.project, u.transaction_key
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
    from unmatched as u
    inner join expected_sources as e
        on e.project = u.project and e.recon_side = {{ other_side('u') }}
    union all
    select u.project, u.transaction_key, b.source, u.paid_bill_date
    from unmatched as u
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
    from unmatched as u
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
            when candidate_key is not null and (difference_minor <> 0 or candidate_matched)
                then 'break'
            when failed_key is not null or order_key is not null then 'break'
            when status = 'processing' then 'suspense'
            when awaiting is not null then 'suspense'
            when age_days < in_flight_days then 'suspense'
            else 'break'
        end as outcome,
        case
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
        null::text as explanation, null::text as awaiting
    from matched_today as m
    inner join scope as o
        on o.project = m.project and o.transaction_key = m.transaction_key
    union all
    select
        u.project, u.transaction_key, u.recon_side, u.side, u.source, u.kind, u.reference,
        u.account, u.direction, u.amount_minor, u.currency, u.status, u.event_at,
        u.business_date, u.file_id, u.line_no, u.row_count,
        u.outcome, u.break_type,
        null, null, u.counterpart, u.difference_minor, false, u.explanation, u.awaiting
    from unmatched_outcomes as u
),

-- The counterpart's own details, so that a difference names both sides; a failed row is not
-- in the scope, so it is looked up among the canonical rows.
counterparts as not materialized (
    select transaction_key, source, reference, amount_minor, business_date
    from {{ ref('int_transactions') }}
    where transaction_key in (select counterpart_key from open_rows where outcome <> 'matched'
                              or break_type is not null)
),

-- For a second copy: the row it repeats, i.e. the row its candidate was paired with.
repeated as not materialized (
    select m.project, m.left_key as candidate_key, min(m.right_key) as repeats_key
    from {{ ref('fct_matches') }} as m where m.as_of_date <= {{ as_of() }}
    group by m.project, m.left_key
    union all
    select m.project, m.right_key, min(m.left_key)
    from {{ ref('fct_matches') }} as m where m.as_of_date <= {{ as_of() }}
    group by m.project, m.right_key
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
    o.line_no
from open_rows as o
left join counterparts as c
    on c.transaction_key = o.counterpart_key
    and (o.outcome <> 'matched' or o.break_type is not null)
left join repeated as r
    on o.break_type = 'duplicate' and r.project = o.project
    and r.candidate_key = o.counterpart_key
