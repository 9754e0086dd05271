-- Per bank statement: the opening and closing balances the bank states, and the credits and
-- debits of the entries loaded for it. Statements of CAMT.053 and MT940 state their balances;
-- a CSV export states a running balance, whose first and last rows give them.
-- Built by business date, as int_transactions: the dates after the last reconciled one.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ replace_rows(new_days('business_date')) }}",
    full_refresh=false,
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['business_date']}],
) }}

with camt_entries as (
    select file_id, statement_id, account,
           sum(amount_minor) filter (where direction = 'credit') as credits_minor,
           sum(amount_minor) filter (where direction = 'debit') as debits_minor,
           count(*) as entries
    from {{ ref('stg_bank__camt053') }}
    where {{ new_days() }}
    group by file_id, statement_id, account
),

camt as (
    select
        'bank_camt053' as source, s.business_date, trim(s.account) as account,
        upper(trim(s.currency)) as currency, s.statement_id as statement,
        -- signed by the parser (DBIT: negative)
        s.opening_balance_minor as opening_minor, s.closing_balance_minor as closing_minor,
        coalesce(e.credits_minor, 0) as credits_minor, coalesce(e.debits_minor, 0) as debits_minor,
        coalesce(e.entries, 0) as entries, s.file_id
    from ({{ loaded_rows('raw', 'bank_camt053__statements') }}) as s
    left join camt_entries as e
        on e.file_id = s.file_id and e.statement_id = s.statement_id
        and e.account = trim(s.account)
    where {{ new_days('s.business_date') }}
),

mt940_entries as (
    select file_id, statement_ref, account,
           sum(amount_minor) filter (where direction = 'credit') as credits_minor,
           sum(amount_minor) filter (where direction = 'debit') as debits_minor,
           count(*) as entries
    from {{ ref('stg_bank__mt940') }}
    where {{ new_days() }}
    group by file_id, statement_ref, account
),

mt940 as (
    select
        'bank_mt940' as source, s.business_date, trim(s.account) as account,
        upper(trim(s.currency)) as currency, s.statement_ref as statement,
        s.opening_balance_minor as opening_minor,  -- signed by the parser (D mark: negative)
        s.closing_balance_minor as closing_minor,
        coalesce(e.credits_minor, 0), coalesce(e.debits_minor, 0), coalesce(e.entries, 0),
        s.file_id
    from ({{ loaded_rows('raw', 'bank_mt940__statements') }}) as s
    left join mt940_entries as e
        on e.file_id = s.file_id and e.statement_ref = s.statement_ref
        and e.account = trim(s.account)
    where {{ new_days('s.business_date') }}
),

csv_rows as (
    select *,
        row_number() over (partition by file_id, account order by line_no) as first_row,
        row_number() over (partition by file_id, account order by line_no desc) as last_row,
        case when direction = 'credit' then amount_minor else -amount_minor end as signed_minor
    from {{ ref('stg_bank__csv_statement') }}
    where {{ new_days() }}
),

bank_csv as (
    select
        'bank_csv' as source, business_date, account, min(currency) as currency,
        'file ' || file_id as statement,
        max(balance_minor - signed_minor) filter (where first_row = 1) as opening_minor,
        max(balance_minor) filter (where last_row = 1) as closing_minor,
        coalesce(sum(amount_minor) filter (where direction = 'credit'), 0) as credits_minor,
        coalesce(sum(amount_minor) filter (where direction = 'debit'), 0) as debits_minor,
        count(*) as entries, file_id
    from csv_rows
    group by business_date, account, file_id
)

select * from camt
union all
select * from mt940
union all
select * from bank_csv
