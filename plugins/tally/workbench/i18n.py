"""Every label of the workbench in Chinese and English; each user reads their own language.

The report columns' labels come from tally.publish (the workbook and the HTML report use the
same words), so a column is called the same everywhere finance sees it.
"""

from __future__ import annotations

from tally import money
from tally.publish import LABELS as REPORT_LABELS

LABELS: dict[str, tuple[str, str]] = {
    **REPORT_LABELS,
    "app_title": ("对账工作台", "Reconciliation workbench"),
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "user_name": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "login_failed": ("用户名或密码错误,或账户已锁定",
                     "Wrong name or password, or the account is locked"),
    "queue": ("待处理", "Queue"),
    "approvals": ("待审批", "Approvals"),
    "inbox": ("消息", "Inbox"),
    "users": ("用户", "Users"),
    "language": ("语言", "Language"),
    "switch_language": ("English", "中文"),
    "case": ("案件", "Case"),
    "case_key": ("案件编号", "Case key"),
    "kind": ("类别", "Kind"),
    "item_type": ("类型", "Type"),
    "case_status": ("处理状态", "Case status"),
    "assignee": ("处理人", "Assignee"),
    "unassigned": ("未分配", "Unassigned"),
    "date_from": ("起始日", "From"),
    "date_to": ("截止日", "To"),
    "min_amount": ("最小金额(分)", "Min amount (minor units)"),
    "max_amount": ("最大金额(分)", "Max amount (minor units)"),
    "min_age": ("最小账龄(天)", "Min age (days)"),
    "max_age": ("最大账龄(天)", "Max age (days)"),
    "sort": ("排序", "Sort"),
    "amount_desc": ("金额从大到小", "Amount, largest first"),
    "amount_asc": ("金额从小到大", "Amount, smallest first"),
    "age_desc": ("账龄从长到短", "Age, oldest first"),
    "age_asc": ("账龄从短到长", "Age, newest first"),
    "filter": ("筛选", "Filter"),
    "any": ("全部", "Any"),
    "total": ("共", "Total"),
    "page": ("页", "Page"),
    "previous": ("上一页", "Previous"),
    "next": ("下一页", "Next"),
    "nothing": ("没有记录", "Nothing here"),
    "open": ("待处理", "Open"),
    "proposed": ("待审批", "Proposed"),
    "resolved": ("已解决", "Resolved"),
    "approved": ("已批准", "Approved"),
    "rejected": ("已驳回", "Rejected"),
    "stale": ("已失效", "Stale"),
    "break": ("差异", "Break"),
    "suspense": ("挂账", "Suspense"),
    "sides": ("双方记录", "Both sides"),
    "file": ("文件", "File"),
    "line": ("行号", "Line"),
    "candidates": ("候选记录", "Candidates"),
    "history": ("处理记录", "History"),
    "proposals": ("处理方案", "Proposals"),
    "propose": ("提交方案", "Propose"),
    "action": ("处理方式", "Action"),
    "manual_match": ("手工匹配", "Manual match"),
    "unmatch": ("取消匹配", "Unmatch"),
    "mark_normal": ("标记为正常", "Mark as normal"),
    "adjustment": ("调账", "Adjustment"),
    "missing_entry": ("补录", "Missing entry"),
    "write_off": ("核销", "Write-off"),
    "left_keys": ("平台方交易键(逗号分隔)", "Left keys (comma separated)"),
    "right_keys": ("对方交易键(逗号分隔)", "Right keys (comma separated)"),
    "amount": ("金额", "Amount"),
    "expected_clearing_date": ("预计清算日", "Expected clearing date"),
    "reason": ("理由", "Reason"),
    "proposer": ("提交人", "Proposer"),
    "approvals_needed": ("所需审批人数", "Approvals needed"),
    "approve": ("批准", "Approve"),
    "reject": ("驳回", "Reject"),
    "decisions": ("审批", "Decisions"),
    "comments": ("备注", "Comments"),
    "comment": ("添加备注", "Add comment"),
    "assign": ("分配", "Assign"),
    "author": ("作者", "Author"),
    "at": ("时间", "At"),
    "actor": ("操作人", "Actor"),
    "event": ("事件", "Event"),
    "assigned": ("案件已分配给你", "A case was assigned to you"),
    "approval_requested": ("有方案待你审批", "A proposal waits for your approval"),
    "mark_all_read": ("全部标为已读", "Mark all read"),
    "unread": ("未读", "Unread"),
    "display_name": ("显示名", "Display name"),
    "role": ("角色", "Role"),
    "viewer": ("只读", "Viewer"),
    "operator": ("经办", "Operator"),
    "approver": ("审批", "Approver"),
    "admin": ("管理员", "Admin"),
    "active": ("启用", "Active"),
    "locked_until": ("锁定至", "Locked until"),
    "failed_logins": ("连续失败次数", "Failed logins"),
    "add_user": ("新增用户", "Add user"),
    "new_password": ("初始密码(仅显示一次)", "Initial password (shown once)"),
    "save": ("保存", "Save"),
    "unlock": ("解锁", "Unlock"),
    "yes": ("是", "Yes"),
    "no": ("否", "No"),
    "done": ("已完成", "Done"),
    "error": ("错误", "Error"),
    "refused": ("无权执行此操作", "You may not do this"),
    "not_found": ("未找到", "Not found"),
}


def translator(language: str):
    """t(key) in the language: the label, else the key itself (never an error on a page)."""
    index = 0 if language == "zh" else 1

    def t(key) -> str:
        found = LABELS.get(str(key))
        return found[index] if found else str(key)
    return t


def amount(minor: int | None, currency: str | None) -> str:
    """Minor units as a grouped decimal ("1,234.50"), exactly; unknown currency: as is."""
    if minor is None:
        return ""
    try:
        text = money.format_minor(minor, currency or "CNY")
    except money.AmountError:
        return str(minor)
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, _, frac = digits.partition(".")
    return f"{sign}{int(whole):,}" + (f".{frac}" if frac else "")
