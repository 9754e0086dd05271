-- For each business date (as_of_date) and project: every row still open that day (arrived by
-- then, not matched on an earlier date) with exactly one outcome:
--   matched   paired today by a rule (a pair across business dates is also a `timing` break)
--   suspense  in flight: no counterpart yet, younger than its kind's suspense days
--   break     a difference a person must look at, typed by break_type
-- Every unmatched row carries an explanation naming its nearest candidate.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='as_of_date',
    full_refresh=false,
    post_hook="analyze {{ this }}",
) }}
{%- set config = recon_config() %}
{%- set ages = config.get('suspense_days', {}) %}

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

classified as not materialized (
    select
        u.*,
        {{ as_of() }} - u.business_date as age_days,
        case u.kind
            {%- for kind, days in ages.items() if kind != 'default' %}
            when '{{ kind }}' then {{ days }}
            {%- endfor %}
            else {{ ages.get('default', 1) }}
        end as suspense_days,
        r.candidate_key,
        r.difference_minor,
        r.candidate_matched,
        a.candidate_reference,
        a.minutes_apart
    from unmatched as u
    left join same_reference as r
        on r.project = u.project and r.transaction_key = u.transaction_key and r.nearness = 1
    left join same_amount as a
        on a.project = u.project and a.transaction_key = u.transaction_key and a.nearness = 1
),

unmatched_outcomes as not materialized (
    select
        classified.*,
        case
            when candidate_key is not null and difference_minor = 0 and candidate_matched
                then 'duplicate'
            when candidate_key is not null and difference_minor <> 0 then 'amount_mismatch'
            when recon_side = 'left' then 'missing_on_statement'
            else 'missing_on_platform'
        end as break_type,
        case
            when candidate_key is not null and (difference_minor <> 0 or candidate_matched)
                then 'break'
            when status = 'processing' then 'suspense'
            when age_days >= suspense_days then 'break'
            else 'suspense'
        end as outcome,
        case
            when candidate_key is not null and difference_minor = 0 and candidate_matched
                then 'same reference ' || match_ref || ' and amount as a row already matched: a second copy'
            when candidate_key is not null and difference_minor <> 0
                then 'same reference ' || match_ref || ', amount differs by '
                     || to_char(difference_minor / 100.0, 'FM999999999990.00')
            when candidate_key is not null
                then 'same reference ' || match_ref || ' and amount, outside the date window'
            when candidate_reference is not null
                then 'no counterpart with reference ' || coalesce(match_ref, '(none)')
                     || '; nearest with the same amount: ' || coalesce(candidate_reference, '(no reference)')
                     || ', ' || minutes_apart || ' min apart'
            else 'no counterpart with reference ' || coalesce(match_ref, '(none)')
                 || ' or amount ' || to_char(amount_minor / 100.0, 'FM999999999990.00')
        end as explanation
    from classified
),

-- Every open row once: paired today (from the scope, with its pair) or not (classified).
open_rows as not materialized (
    select
        o.project, o.transaction_key, o.recon_side, o.side, o.source, o.kind, o.reference,
        o.account, o.direction, o.amount_minor, o.currency, o.status, o.event_at,
        o.business_date, o.file_id, o.line_no,
        'matched' as outcome,
        case
            when m.across_dates then 'timing'
            when m.status_corrected then 'status_mismatch'
        end as break_type,
        m.rule, m.pass, m.counterpart_key, m.amount_difference_minor, m.status_corrected,
        null::text as explanation
    from matched_today as m
    inner join scope as o
        on o.project = m.project and o.transaction_key = m.transaction_key
    union all
    select
        u.project, u.transaction_key, u.recon_side, u.side, u.source, u.kind, u.reference,
        u.account, u.direction, u.amount_minor, u.currency, u.status, u.event_at,
        u.business_date, u.file_id, u.line_no,
        u.outcome, u.break_type,
        null, null, u.candidate_key, u.difference_minor, false, u.explanation
    from unmatched_outcomes as u
)

select
    {{ as_of() }} as as_of_date,
    project,
    transaction_key,
    recon_side,
    side,
    source,
    kind,
    reference,
    account,
    direction,
    amount_minor,
    currency,
    status,
    event_at,
    business_date,
    {{ as_of() }} - business_date as age_days,
    outcome,
    break_type,
    rule,
    pass,
    counterpart_key,
    amount_difference_minor,
    status_corrected,
    explanation,
    file_id,
    line_no
from open_rows
