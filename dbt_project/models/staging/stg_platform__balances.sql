-- Platform account balances at the end of each business day.
with balances as (
    {{ loaded_rows('raw', 'platform_balances') }}
)

select
    trim(as_of_date)::date as as_of_date,
    trim(account) as account,
    trim(account_type) as account_type,
    upper(trim(currency)) as currency,
    opening_balance_minor,
    closing_balance_minor,
    available_minor,
    frozen_minor,
    business_date,
    file_id,
    line_no
from balances
