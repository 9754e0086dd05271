-- Differences per business date: open breaks (a person must look) and the day's informational
-- ones (matched across business dates, or with a status the platform must correct).
select
    outcomes.as_of_date,
    outcomes.project,
    outcomes.break_type,
    types.label_zh,
    types.label_en,
    types.needs_person and outcomes.outcome = 'break' as needs_person,
    outcomes.outcome,
    outcomes.source,
    outcomes.side,
    outcomes.reference,
    outcomes.account,
    outcomes.direction,
    outcomes.amount_minor,
    outcomes.amount_difference_minor,
    outcomes.currency,
    outcomes.business_date,
    outcomes.age_days,
    outcomes.explanation,
    outcomes.rule,
    outcomes.transaction_key,
    outcomes.counterpart_key,
    outcomes.file_id,
    outcomes.line_no
from {{ ref('fct_outcomes') }} as outcomes
inner join {{ ref('break_types') }} as types using (break_type)
where outcomes.outcome = 'break' or outcomes.break_type is not null
