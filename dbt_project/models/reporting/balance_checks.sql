select
    as_of_date as business_date,
    check_type,
    {{ mask_account('account') }} as account,
    currency,
    subject,
    expected_minor,
    actual_minor,
    difference_minor,
    explained_minor,
    passed
from {{ ref('fct_balance_checks') }}
