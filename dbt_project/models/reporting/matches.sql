select
    as_of_date as business_date,
    project,
    pass,
    rule,
    rule_kind,
    left_key,
    right_key,
    left_reference,
    right_reference,
    left_amount_minor,
    right_amount_minor,
    amount_difference_minor,
    minutes_apart,
    currency,
    left_business_date,
    right_business_date,
    decision_id
from {{ ref('fct_matches') }}
