select
    as_of_date as business_date,
    project,
    currency,
    row_count,
    matched_count,
    suspense_count,
    break_count,
    matched_amount_minor,
    suspense_amount_minor,
    break_amount_minor,
    match_rate,
    complete,
    awaiting_sources,
    resolved_count,
    resolved_amount_minor
from {{ ref('fct_daily_summary') }}
