-- Bank statements for accounts that are not in the registry (include/accounts.yaml), per
-- business date: loaded and kept, but in no reconciliation project (every project selects
-- bank rows by the account's role). Named in the day's summary so someone registers them.
-- Built by business date, as int_transactions: the dates after the last reconciled one.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ replace_rows(new_days('business_date')) }}",
    full_refresh=false,
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['business_date']}],
) }}

select
    business_date,
    account,
    source,
    count(*) as booking_count,
    coalesce(sum(amount_minor) filter (where direction = 'credit'), 0) as credits_minor,
    coalesce(sum(amount_minor) filter (where direction = 'debit'), 0) as debits_minor,
    min(file_id) as first_file_id
from {{ ref('int_transactions') }}
where {{ new_days() }} and side = 'bank' and account_role is null
group by business_date, account, source
