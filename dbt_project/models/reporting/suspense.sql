select
    as_of_date as business_date,
    project,
    source,
    side,
    kind,
    reference,
    {{ mask_account('account') }} as account,
    direction,
    amount_minor,
    currency,
    status,
    business_date as transaction_date,
    age_days,
    becomes_break_type,
    explanation,
    awaiting,
    transaction_key
from {{ ref('fct_suspense') }}
