"""The account registry: include/accounts.yaml, checked, and handed to dbt as a var.

Every bank account Tally reconciles is registered there with its bank, role (collection,
custody, operating), currency and statement source, and the payment channels that settle into
it. How a channel's payout is recognised on a bank statement (the payer's legal names and
accounts, remittance patterns that may capture the bill date, the expected delay in days) is
configured per channel and may be overridden per receiving account.

Errors name the file and the line of the offending value (`include/accounts.yaml:12: ...`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from tally.config import Settings

ROLES = ("collection", "custody", "operating")
ACCOUNT_KEYS = {"account", "bank", "role", "currency", "statement_source", "settles", "label"}
CHANNEL_KEYS = {"payer_names", "payer_accounts", "remittance_patterns", "delay_days"}
SETTLES_KEYS = {"channel", *CHANNEL_KEYS}
CURRENCY = re.compile(r"^[A-Z]{3}$")


class AccountsError(ValueError):
    pass


@dataclass(frozen=True)
class Settlement:
    """How one channel's payouts into one account are recognised."""

    account: str
    channel: str
    payer_names: tuple[str, ...]
    payer_accounts: tuple[str, ...]
    remittance_patterns: tuple[str, ...]
    min_delay_days: int
    max_delay_days: int


@dataclass(frozen=True)
class Account:
    account: str
    bank: str
    role: str
    currency: str
    statement_source: str
    settles: tuple[Settlement, ...]


@dataclass(frozen=True)
class Registry:
    accounts: tuple[Account, ...]

    def roles(self) -> dict[str, str]:
        return {a.account: a.role for a in self.accounts}

    def settlements(self) -> list[Settlement]:
        return [s for a in self.accounts for s in a.settles]

    def dbt_var(self) -> dict:
        """The registry as dbt reads it (var `accounts`): plain lists, rendered to VALUES."""
        return {
            "accounts": [{"account": a.account, "bank": a.bank, "role": a.role,
                          "currency": a.currency, "statement_source": a.statement_source}
                         for a in self.accounts],
            "settlements": [{"account": s.account, "channel": s.channel,
                             "payer_names": list(s.payer_names),
                             "payer_accounts": list(s.payer_accounts),
                             "remittance_patterns": list(s.remittance_patterns),
                             "min_delay_days": s.min_delay_days,
                             "max_delay_days": s.max_delay_days}
                            for s in self.settlements()],
        }


class _Reader:
    """Walks the YAML node tree (nodes carry their line) and builds plain values."""

    def __init__(self, name: str):
        self.name = name

    def fail(self, node: yaml.Node, message: str) -> AccountsError:
        return AccountsError(f"{self.name}:{node.start_mark.line + 1}: {message}")

    def mapping(self, node: yaml.Node, what: str, allowed: set[str]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out: dict[str, yaml.Node] = {}
        for key, value in node.value:
            name = self.scalar(key, f"a key of {what}")
            if name not in allowed:
                raise self.fail(key, f"{what}: unknown key {name!r} (allowed: "
                                     f"{', '.join(sorted(allowed))})")
            if name in out:
                raise self.fail(key, f"{what}: {name!r} given twice")
            out[name] = value
        return out

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list")
        return list(node.value)

    def scalar(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.value == "" \
                or node.tag == "tag:yaml.org,2002:null":
            raise self.fail(node, f"{what} must be a non-empty text")
        return str(node.value).strip()

    def texts(self, node: yaml.Node, what: str) -> tuple[str, ...]:
        return tuple(self.scalar(item, what) for item in self.sequence(node, what))

    def integer(self, node: yaml.Node, what: str) -> int:
        text = self.scalar(node, what)
        if not re.fullmatch(r"\d+", text):
            raise self.fail(node, f"{what} must be a whole number of days, got {text!r}")
        return int(text)


def _channel_options(reader: _Reader, fields: dict[str, yaml.Node], what: str,
                     base: dict) -> dict:
    options = dict(base)
    if "payer_names" in fields:
        options["payer_names"] = reader.texts(fields["payer_names"], f"{what}: payer_names")
    if "payer_accounts" in fields:
        options["payer_accounts"] = reader.texts(fields["payer_accounts"],
                                                 f"{what}: payer_accounts")
    if "remittance_patterns" in fields:
        patterns = []
        for node in reader.sequence(fields["remittance_patterns"],
                                    f"{what}: remittance_patterns"):
            pattern = reader.scalar(node, f"{what}: a remittance pattern")
            try:
                compiled = re.compile(pattern)
            except re.error as error:
                raise reader.fail(node, f"{what}: remittance pattern {pattern!r} is not a "
                                        f"regular expression: {error}") from None
            if compiled.groups != 1:
                raise reader.fail(node, f"{what}: remittance pattern {pattern!r} has "
                                        f"{compiled.groups} capture groups; it needs one, the "
                                        "bill date (yyyymmdd or yyyy-mm-dd); use (?:...) for "
                                        "the others")
            patterns.append(pattern)
        options["remittance_patterns"] = tuple(patterns)
    if "delay_days" in fields:
        node = fields["delay_days"]
        bounds = [reader.integer(n, f"{what}: delay_days")
                  for n in reader.sequence(node, f"{what}: delay_days")]
        if len(bounds) != 2 or bounds[0] > bounds[1]:
            raise reader.fail(node, f"{what}: delay_days must be [earliest, latest] days "
                                    f"after the bill day, got {bounds}")
        options["delay_days"] = tuple(bounds)
    return options


def parse(text: str, name: str = "accounts.yaml",
          statement_sources: set[str] | None = None) -> Registry:
    reader = _Reader(name)
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise AccountsError(f"{name}{line}: not valid YAML: "
                            f"{getattr(error, 'problem', error)}") from None
    if root is None:
        raise AccountsError(f"{name}: empty")
    top = reader.mapping(root, "the file", {"version", "channels", "accounts"})
    if "version" not in top or reader.scalar(top["version"], "version") != "1":
        raise reader.fail(top.get("version", root), "version must be 1")

    channels: dict[str, dict] = {}
    if "channels" in top:
        node = top["channels"]
        if not isinstance(node, yaml.MappingNode):
            raise reader.fail(node, "channels must be a mapping of channel name to options")
        for key, value in node.value:
            channel = reader.scalar(key, "a channel name")
            if not channel.isidentifier() or channel in channels:
                raise reader.fail(key, f"channel {channel!r} is not an identifier or repeated")
            fields = reader.mapping(value, f"channel {channel}", CHANNEL_KEYS)
            channels[channel] = _channel_options(
                reader, fields, f"channel {channel}",
                {"payer_names": (), "payer_accounts": (), "remittance_patterns": (),
                 "delay_days": (1, 1)})

    if "accounts" not in top:
        raise reader.fail(root, "accounts (the list of bank accounts) is missing")
    accounts, seen = [], set()
    for item in reader.sequence(top["accounts"], "accounts"):
        fields = reader.mapping(item, "an account", ACCOUNT_KEYS)
        for required in ("account", "bank", "role", "currency", "statement_source"):
            if required not in fields:
                raise reader.fail(item, f"account: {required!r} is missing")
        number = reader.scalar(fields["account"], "account")
        what = f"account {number}"
        if number in seen:
            raise reader.fail(fields["account"], f"{what} is registered twice")
        seen.add(number)
        role = reader.scalar(fields["role"], f"{what}: role")
        if role not in ROLES:
            raise reader.fail(fields["role"], f"{what}: role {role!r} is not one of "
                                              f"{', '.join(ROLES)}")
        currency = reader.scalar(fields["currency"], f"{what}: currency")
        if not CURRENCY.match(currency):
            raise reader.fail(fields["currency"], f"{what}: currency {currency!r} is not an "
                                                  "ISO 4217 code")
        source = reader.scalar(fields["statement_source"], f"{what}: statement_source")
        if statement_sources is not None and source not in statement_sources:
            raise reader.fail(fields["statement_source"],
                              f"{what}: statement_source {source!r} is not a configured "
                              "source (include/sources/*.yaml)")
        settles = []
        for entry in reader.sequence(fields.get("settles", yaml.SequenceNode(
                "tag:yaml.org,2002:seq", [])), f"{what}: settles"):
            if isinstance(entry, yaml.ScalarNode):
                channel, overrides = reader.scalar(entry, f"{what}: a channel"), {}
            else:
                overrides = reader.mapping(entry, f"{what}: a channel it settles", SETTLES_KEYS)
                if "channel" not in overrides:
                    raise reader.fail(entry, f"{what}: settles: 'channel' is missing")
                channel = reader.scalar(overrides["channel"], f"{what}: channel")
            if channel not in channels:
                raise reader.fail(entry, f"{what}: channel {channel!r} is not configured "
                                         "under channels")
            if any(s.channel == channel for s in settles):
                raise reader.fail(entry, f"{what}: channel {channel!r} listed twice")
            options = _channel_options(reader, overrides, f"{what}, channel {channel}",
                                       channels[channel])
            if not options["payer_names"] and not options["payer_accounts"]:
                raise reader.fail(entry, f"{what}, channel {channel}: no payer_names or "
                                         "payer_accounts: its payouts cannot be recognised")
            settles.append(Settlement(number, channel, options["payer_names"],
                                      options["payer_accounts"],
                                      options["remittance_patterns"], *options["delay_days"]))
        accounts.append(Account(number, reader.scalar(fields["bank"], f"{what}: bank"), role,
                                currency, source, tuple(settles)))
    return Registry(tuple(accounts))


def path(settings: Settings) -> Path:
    return settings.include_dir / "accounts.yaml"


def load(settings: Settings) -> Registry:
    from tally import sources

    file = path(settings)
    if not file.exists():
        raise AccountsError(f"{file}: missing: every bank account Tally reconciles is "
                            "registered there")
    known = set(sources.load_all(settings))
    return parse(file.read_text(encoding="utf-8"), str(file), known)
