"""Tally: daily reconciliation of a platform's ledger against bank and channel statements."""

from tally.config import disable_telemetry

disable_telemetry()

__version__ = "0.1.0"
