-- In-flight items per business date: no counterpart yet, still within their suspense days.
select
    as_of_date,
    project,
    source,
    side,
    kind,
    reference,
    account,
    direction,
    amount_minor,
    currency,
    status,
    business_date,
    age_days,
    break_type as becomes_break_type,
    explanation,
    awaiting,
    transaction_key
from {{ ref('fct_outcomes') }}
where outcome = 'suspense'
