"""Who may do what. Every page and API call asks here, on the server; the pages only hide
what a role cannot do, they never decide it."""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("viewer", "operator", "approver", "admin")
LANGUAGES = ("zh", "en")

# A proposer (maker) and an approver (checker) are different roles; an admin may be either,
# and the proposer of a proposal can still never decide it (decisions.py and the database).
PERMISSIONS = {
    "view": {"viewer", "operator", "approver", "admin"},
    "work": {"operator", "approver", "admin"},  # assign, comment
    "propose": {"operator", "admin"},
    "approve": {"approver", "admin"},
    "admin": {"admin"},
}


class Refused(Exception):
    """The user may not do this (HTTP 403)."""


class NotFound(Exception):
    """No such case, proposal or user (HTTP 404)."""


class Invalid(ValueError):
    """The request itself is wrong: a missing reason, an unknown action (HTTP 400)."""


@dataclass(frozen=True)
class User:
    name: str
    display_name: str
    role: str
    language: str

    def can(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]


def require(user: User | None, permission: str) -> User:
    if user is None:
        raise Refused("sign in first")
    if not user.can(permission):
        raise Refused(f"{user.role} may not {permission}")
    return user
