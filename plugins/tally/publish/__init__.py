"""Publishing: reports for finance, written to the published zone once the gate has passed.

Labels below are shared by the workbook and the HTML report: Chinese first, then English.
"""

from __future__ import annotations

LABELS = {
    "business_date": ("对账日", "Business date"),
    "project": ("对账项目", "Project"),
    "currency": ("币种", "Currency"),
    "row_count": ("笔数", "Rows"),
    "matched_count": ("已匹配笔数", "Matched"),
    "suspense_count": ("挂账笔数", "In suspense"),
    "break_count": ("差异笔数", "Breaks"),
    "matched_amount_minor": ("已匹配金额", "Matched amount"),
    "suspense_amount_minor": ("挂账金额", "Suspense amount"),
    "break_amount_minor": ("差异金额", "Break amount"),
    "match_rate": ("匹配率", "Match rate"),
    "resolved_count": ("已处理笔数", "Resolved"),
    "resolved_amount_minor": ("已处理金额", "Resolved amount"),
    "decision_id": ("处理决定编号", "Decision"),
    "break_type": ("差异类型", "Break type"),
    "outcome": ("结果", "Outcome"),
    "needs_person": ("需人工处理", "Needs a person"),
    "source": ("来源", "Source"),
    "side": ("方", "Side"),
    "kind": ("业务类型", "Kind"),
    "reference": ("参考号", "Reference"),
    "account": ("账号", "Account"),
    "account_masked": ("账号", "Account"),
    "direction": ("收付方向", "Direction"),
    "amount_minor": ("金额", "Amount"),
    "amount_difference_minor": ("金额差", "Amount difference"),
    "transaction_date": ("交易日", "Transaction date"),
    "age_days": ("账龄(天)", "Age (days)"),
    "ageing_bucket": ("账龄区间", "Ageing bucket"),
    "explanation": ("说明", "Explanation"),
    "rule": ("匹配规则", "Rule"),
    "transaction_key": ("交易键", "Transaction key"),
    "counterpart_key": ("对方交易键", "Counterpart key"),
    "status": ("状态", "Status"),
    "becomes_break_type": ("逾期后差异类型", "Becomes break type"),
    "platform_status": ("平台状态", "Platform status"),
    "statement_status": ("对账单状态", "Statement status"),
    "count": ("笔数", "Count"),
    "check_type": ("核对类型", "Check type"),
    "subject": ("核对对象", "Subject"),
    "expected_minor": ("应有金额", "Expected"),
    "actual_minor": ("实际金额", "Actual"),
    "passed": ("通过", "Passed"),
    "balanced": ("已平衡", "Balanced"),
    "platform_balance_minor": ("平台余额", "Platform balance"),
    "bank_balance_minor": ("银行余额", "Bank balance"),
    "difference_minor": ("差额", "Difference"),
    "open_breaks_minor": ("未决差异", "Open breaks"),
    "suspense_minor": ("挂账", "Suspense"),
    "explained_minor": ("可解释差额", "Explained"),
    "unexplained_minor": ("未解释差额", "Unexplained"),
    "break_key": ("差异编号", "Break key"),
    "break_row_count": ("差异涉及笔数", "Rows in breaks"),
    "complete": ("对账完整", "Complete"),
    "awaiting_sources": ("等待数据源", "Awaiting sources"),
    "awaiting": ("等待数据源", "Awaiting"),
    "repeats_key": ("重复的原交易键", "Repeats key"),
    "left_key": ("平台方交易键", "Left key"),
    "left_reference": ("平台方参考号", "Left reference"),
    "left_amount_minor": ("平台方金额", "Left amount"),
    "left_business_date": ("平台方日期", "Left date"),
    "right_key": ("对方交易键", "Right key"),
    "right_reference": ("对方参考号", "Right reference"),
    "right_amount_minor": ("对方金额", "Right amount"),
    "right_business_date": ("对方日期", "Right date"),
}

VALUES = {
    "outcome": {"break": "差异 Break", "suspense": "挂账 Suspense", "matched": "已匹配 Matched",
                "resolved": "已处理 Resolved"},
    "direction": {"credit": "收 Credit", "debit": "付 Debit"},
    "side": {"platform": "平台 Platform", "bank": "银行 Bank", "channel": "渠道 Channel"},
    "needs_person": {True: "是 Yes", False: "否 No"},
    "balanced": {True: "是 Yes", False: "否 No"},
    "passed": {True: "是 Yes", False: "否 No"},
    "complete": {True: "是 Yes", False: "否 No"},
    "check_type": {
        "statement_rollforward": "对账单余额滚动 Statement roll-forward",
        "platform_account_rollforward": "平台账户余额滚动 Platform account roll-forward",
        "settlement_trial_balance": "结算试算平衡 Settlement trial balance",
        "platform_vs_bank": "平台对银行余额 Platform vs bank balance",
    },
}


def label(column: str) -> tuple[str, str]:
    """(Chinese, English) header for a column; an unknown column is shown by its name."""
    return LABELS.get(column, (column, column))


def header(column: str) -> str:
    zh, en = label(column)
    return zh if zh == en else f"{zh} / {en}"


def value_text(column: str, value):
    """A coded value in both languages where Tally knows it (outcome, direction...)."""
    return VALUES.get(column, {}).get(value, value)
