-- One row per canonical transaction: matched (and to what, by which rule) or unmatched.
with transactions as (
    select * from {{ ref('int_transactions') }}
),

matches as (
    select * from {{ ref('int_matches__exact_reference') }}
),

matched_sides as (
    select platform_key as transaction_key, bank_key as counterpart_key, project, rule
    from matches
    union all
    select bank_key as transaction_key, platform_key as counterpart_key, project, rule
    from matches
)

select
    transactions.transaction_key,
    transactions.business_date,
    'platform_vs_bank' as project,
    transactions.source,
    transactions.side,
    transactions.reference,
    transactions.source_id,
    transactions.account,
    transactions.direction,
    transactions.amount_minor,
    transactions.currency,
    transactions.event_at,
    case when matched_sides.transaction_key is null then 'unmatched' else 'matched' end
        as outcome,
    matched_sides.rule,
    matched_sides.counterpart_key,
    transactions.file_id,
    transactions.line_no
from transactions
left join matched_sides using (transaction_key)
