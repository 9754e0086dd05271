-- What BI tools and reports read: reconciliation outcomes with account numbers masked.
select
    business_date,
    project,
    source,
    side,
    reference,
    source_id,
    '****' || right(account, 4) as account_masked,
    direction,
    amount_minor,
    currency,
    event_at,
    outcome,
    rule,
    transaction_key,
    counterpart_key
from {{ ref('fct_reconciliation_outcomes') }}
