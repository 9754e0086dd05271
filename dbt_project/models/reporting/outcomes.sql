select
    as_of_date as business_date,
    project,
    source,
    side,
    kind,
    reference,
    {{ mask_account('account') }} as account_masked,
    direction,
    amount_minor,
    currency,
    outcome,
    break_type,
    rule,
    age_days,
    explanation,
    transaction_key,
    counterpart_key
from {{ ref('fct_outcomes') }}
