"""Reconciliation rules as data: include/reconciliation.yaml, checked, hashed, and handed to
dbt as vars (the SQL of every rule pass is generated from it by dbt macros)."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import yaml

from tally.config import Settings

RULE_KINDS = {"exact": {"keys"}, "tolerance": {"keys"}, "group": {"group_key"}}


class RulesError(ValueError):
    pass


def load(settings: Settings) -> dict:
    path = settings.include_dir / "reconciliation.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    validate(config)
    return config


def _days(value, where: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RulesError(f"{where}: in_flight_days must be a whole number of days, not {value!r}")


def validate(config: dict) -> None:
    for kind, days in (config.get("in_flight_days") or {}).items():
        _days(days, f"in_flight_days.{kind}")
    for channel, bills in (config.get("channel_bills") or {}).items():
        if not isinstance(bills, list) or not all(
                isinstance(b, str) and b.isidentifier() for b in bills):
            raise RulesError(f"channel_bills.{channel}: a list of source names, not {bills!r}")
    names = set()
    for project in config.get("projects", []):
        name = project.get("project")
        if not name or not name.isidentifier() or name in names:
            raise RulesError(f"project name {name!r} is missing, not an identifier or repeated")
        names.add(name)
        for side in ("left", "right"):
            if not project.get(side):
                raise RulesError(f"project {name}: '{side}' (which rows) is missing")
        if project.get("in_flight_days") is not None:
            _days(project["in_flight_days"], f"project {name}")
        sources = project.get("sources") or {}
        if set(sources) - {"left", "right"} or not all(
                isinstance(v, list) and all(isinstance(s, str) and s.isidentifier() for s in v)
                for v in sources.values()):
            raise RulesError(f"project {name}: sources must map left/right to lists of source"
                             f" names, not {sources!r}")
        rules = project.get("rules") or []
        if not rules:
            raise RulesError(f"project {name}: no rules")
        for rule in rules:
            kind = rule.get("kind")
            if kind not in RULE_KINDS:
                raise RulesError(f"project {name}, rule {rule.get('rule')}: unknown kind {kind!r}")
            missing = RULE_KINDS[kind] - set(rule)
            if missing:
                raise RulesError(f"project {name}, rule {rule['rule']}: missing {sorted(missing)}")


def digest(config: dict) -> str:
    """A stable hash of the rules in force, recorded with every run."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def fee_signs(settings: Settings) -> dict[str, str]:
    """Each channel source's fee sign convention, from its configuration (`fee_sign`); the
    staging models read it through the macro fee_cost (dbt var `fee_signs`)."""
    from tally import sources

    return {name: config.fee_sign for name, config in sources.load_all(settings).items()
            if config.fee_sign}


def dbt_vars(settings: Settings, as_of: date | str) -> dict:
    from tally import accounts

    return {"as_of": str(as_of), "reconciliation": load(settings),
            "fee_signs": fee_signs(settings), "accounts": accounts.load(settings).dbt_var()}
