"""Source configurations: how each statement source's files are read (include/sources/*.yaml)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tally.config import Settings


@dataclass(frozen=True)
class AmountSpec:
    currency_field: str | None = None
    currency: str | None = None
    thousands: str = ""
    blank_is_zero: bool = False


@dataclass(frozen=True)
class SourceConfig:
    source: str
    side: str
    version: int
    parser: str
    extensions: list[str]
    encoding: str
    delimiter: str
    columns: dict[str, str]
    required: list[str]
    amounts: dict[str, AmountSpec]
    allowed_values: dict[str, list[str]] = field(default_factory=dict)
    checks: list[dict] = field(default_factory=list)
    timezone: str = "Asia/Shanghai"
    digest: str = ""

    @property
    def parser_version(self) -> str:
        """What the manifest records: config version plus a hash of its exact text."""
        return f"{self.version}+{self.digest[:12]}"

    @property
    def raw_table(self) -> str:
        return f"raw.{self.source}"

    @property
    def raw_columns(self) -> list[str]:
        """Columns of the raw table after file_id and line_no: texts as given, then minor units."""
        return [*self.columns, *(f"{name}_minor" for name in self.amounts)]


def parse_config(text: str) -> SourceConfig:
    doc = yaml.safe_load(text)
    amounts = {name: AmountSpec(**(spec or {})) for name, spec in doc.pop("amounts", {}).items()}
    return SourceConfig(amounts=amounts, digest=hashlib.sha256(text.encode()).hexdigest(), **doc)


def load_all(settings: Settings) -> dict[str, SourceConfig]:
    configs = {}
    for path in sorted(Path(settings.include_dir, "sources").glob("*.yaml")):
        config = parse_config(path.read_text(encoding="utf-8"))
        configs[config.source] = config
    return configs
