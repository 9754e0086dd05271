"""A bank's statement API: GET /statements?account=<id>&date=yyyy-MM-dd with a bearer token.
200 with the CAMT.053 XML (Content-Disposition names the file), 202 Accepted + Retry-After
while the statement is being produced, 404 for an unknown account, 401 for a bad token,
500 when told to fail."""

from __future__ import annotations

import json

from tests.vendors import Reply, Request, VendorServer


def _json(status: int, **fields) -> Reply:
    return Reply(status, json.dumps(fields).encode(), {"Content-Type": "application/json"})


class BankServer(VendorServer):
    def __init__(self, *, token: str = "bank-test-token"):
        super().__init__()
        self.token = token
        self.statements: dict[tuple[str, str], bytes] = {}  # (account, date) -> XML
        self.not_ready_calls = 0  # the first N valid calls answer 202
        self.retry_after = "0"  # Retry-After sent with 202
        self.fail_calls = 0  # the first N calls answer 500
        self.calls_seen = self.valid_calls = 0

    def handle(self, req: Request) -> Reply:
        if req.method != "GET" or req.path != "/statements":
            return _json(404, error="not_found")
        self.calls_seen += 1
        if self.calls_seen <= self.fail_calls:
            return _json(500, error="internal_error")
        if req.headers.get("authorization") != f"Bearer {self.token}":
            return _json(401, error="invalid_token")
        account, day = req.query.get("account", ""), req.query.get("date", "")
        if account not in {a for a, _ in self.statements}:
            return _json(404, error="unknown_account", account=account)
        self.valid_calls += 1
        statement = self.statements.get((account, day))
        if self.valid_calls <= self.not_ready_calls or statement is None:
            return Reply(202, b"", {"Retry-After": self.retry_after})
        return Reply(200, statement, {
            "Content-Type": "application/xml",
            "Content-Disposition":
                f'attachment; filename="camt053_{account}_{day.replace("-", "")}.xml"'})
