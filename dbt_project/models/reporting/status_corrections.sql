select
    as_of_date as business_date,
    project,
    reference,
    source,
    {{ mask_account('account') }} as account,
    amount_minor,
    currency,
    platform_status,
    statement_status,
    transaction_key,
    counterpart_key
from {{ ref('fct_status_corrections') }}
