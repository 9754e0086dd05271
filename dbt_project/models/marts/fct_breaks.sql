-- Breaks per business date: one row per difference, a case for a person (needs_person), and
-- the day's informational timing differences (matched across business dates), and the breaks
-- people resolved that day in the workbench (outcome resolved, no longer needing a person).
-- Suspense items
-- and status corrections of matched rows are not breaks: they are in fct_suspense and
-- fct_status_corrections.
--
-- A difference names both sides. A pair whose amounts differ is one break, not one per row;
-- a second copy names the copy and the row it repeats; a row settled on one side and failed
-- on the other names both. break_key is stable: a hash of the project, the type and the two
-- rows' stable keys, so the same difference keeps its key on every day it stays open and in
-- every re-run.
-- Kept by date: a run writes its as_of date's rows and no other. Indexed by break_key too:
-- the workbench finds a case's break by its key, on any date.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ replace_rows('as_of_date = ' ~ as_of()) }}",
    full_refresh=false,
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['as_of_date']}],
    post_hook="{{ index_on('break_key') }}",
) }}

with outcomes as (
    select * from {{ ref('fct_outcomes') }}
    where as_of_date = {{ as_of() }}
      and (outcome in ('break', 'resolved') or break_type = 'timing')
),

-- Each row with its left and right side; a row's counterpart stands on the other side,
-- except a second copy's, whose original stands on its own side.
sided as (
    select
        o.*,
        case when o.recon_side = 'left' then o.transaction_key else o.counterpart_key end
            as left_key,
        case when o.recon_side = 'right' then o.transaction_key else o.counterpart_key end
            as right_key
    from outcomes as o
),

-- A pair both of whose rows are breaks of the same type (an amount mismatch, a timing pair)
-- is one difference: the left row speaks for it.
one_per_difference as (
    select s.*
    from sided as s
    where not (
        s.recon_side = 'right' and exists (
            select 1 from sided as l
            where l.as_of_date = s.as_of_date and l.project = s.project
              and l.recon_side = 'left' and l.break_type = s.break_type
              and l.transaction_key = s.counterpart_key
              and l.counterpart_key = s.transaction_key
        )
    )
)

select
    d.as_of_date,
    md5(concat_ws('|', d.project, d.break_type, coalesce(d.left_key, ''),
                  coalesce(d.right_key, ''))) as break_key,
    d.project,
    d.break_type,
    types.label_zh,
    types.label_en,
    d.outcome = 'break' as needs_person,
    d.outcome,
    d.source,
    d.side,
    d.reference,
    d.account,
    d.direction,
    d.amount_minor,
    d.amount_difference_minor,
    d.currency,
    d.business_date,
    d.age_days,
    d.explanation,
    d.rule,
    d.transaction_key,
    d.counterpart_key,
    d.repeats_key,
    d.left_key,
    d.right_key,
    case when d.recon_side = 'left' then d.reference else d.counterpart_reference end
        as left_reference,
    case when d.recon_side = 'right' then d.reference else d.counterpart_reference end
        as right_reference,
    case when d.recon_side = 'left' then d.amount_minor else d.counterpart_amount_minor end
        as left_amount_minor,
    case when d.recon_side = 'right' then d.amount_minor else d.counterpart_amount_minor end
        as right_amount_minor,
    case when d.recon_side = 'left' then d.business_date else d.counterpart_business_date end
        as left_business_date,
    case when d.recon_side = 'right' then d.business_date else d.counterpart_business_date end
        as right_business_date,
    -- a settlement batch's bill rows (they link to it by settlement_batch)
    d.row_count,
    d.file_id,
    d.line_no
from one_per_difference as d
inner join {{ ref('break_types') }} as types using (break_type)
