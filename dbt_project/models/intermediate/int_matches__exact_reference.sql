-- Rule exact_reference: same business date, reference, direction, amount and currency.
-- When several rows share all of these, the n-th on one side pairs with the n-th on the
-- other (ordered by event time, then key), so no row is ever matched twice.
with platform as (
    select
        *,
        row_number() over (
            partition by business_date, reference, direction, amount_minor, currency
            order by event_at, transaction_key
        ) as occurrence
    from {{ ref('int_transactions') }}
    where side = 'platform' and status = 'success'
),

bank as (
    select
        *,
        row_number() over (
            partition by business_date, reference, direction, amount_minor, currency
            order by event_at, transaction_key
        ) as occurrence
    from {{ ref('int_transactions') }}
    where side = 'bank' and reference is not null
)

select
    'platform_vs_bank' as project,
    'exact_reference' as rule,
    platform.business_date,
    platform.transaction_key as platform_key,
    bank.transaction_key as bank_key,
    platform.reference,
    platform.amount_minor,
    platform.currency
from platform
inner join bank
    on platform.business_date = bank.business_date
    and platform.reference = bank.reference
    and platform.direction = bank.direction
    and platform.amount_minor = bank.amount_minor
    and platform.currency = bank.currency
    and platform.occurrence = bank.occurrence
