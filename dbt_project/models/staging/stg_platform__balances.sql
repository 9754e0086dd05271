-- Platform account balances at the end of each business day.
with loaded_files as (
    select file_id, business_date
    from {{ source('tally', 'files') }}
    where status = 'loaded'
)

select
    trim(balances.as_of_date)::date as as_of_date,
    trim(balances.account) as account,
    trim(balances.account_type) as account_type,
    upper(trim(balances.currency)) as currency,
    balances.opening_balance_minor,
    balances.closing_balance_minor,
    balances.available_minor,
    balances.frozen_minor,
    loaded_files.business_date,
    balances.file_id,
    balances.line_no
from {{ source('raw', 'platform_balances') }} as balances
inner join loaded_files using (file_id)
