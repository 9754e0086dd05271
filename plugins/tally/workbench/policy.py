"""The workbench's limits, from include/workbench.yaml: data a finance controller changes, not
code. Amounts are integer minor units, compared with the absolute amount of a proposal."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Policy:
    second_approver_above_minor: int = 1_000_000
    write_off_limit_minor: int = 5_000_000
    auto_assign: dict[str, str] = field(default_factory=dict)  # project -> user name

    def approvals_needed(self, amount_minor: int | None) -> int:
        return 2 if abs(amount_minor or 0) > self.second_approver_above_minor else 1


def load(path: Path) -> Policy:
    if not path.exists():
        return Policy()
    data = yaml.safe_load(path.read_text()) or {}
    for key in ("second_approver_above_minor", "write_off_limit_minor"):
        # integers only: a limit written as 10000.00 would be a float, and money is never one
        if key in data and (not isinstance(data[key], int) or isinstance(data[key], bool)):
            raise ValueError(f"{path}: {key} must be an integer number of minor units")
    return Policy(
        second_approver_above_minor=data.get("second_approver_above_minor", 1_000_000),
        write_off_limit_minor=data.get("write_off_limit_minor", 5_000_000),
        auto_assign={str(k): str(v) for k, v in (data.get("auto_assign") or {}).items() if v},
    )


def for_settings(settings) -> Policy:
    return load(settings.include_dir / "workbench.yaml")
