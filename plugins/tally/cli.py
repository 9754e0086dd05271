"""The `tally` command."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

from tally import config

DEMO_DATE = "2026-11-20"


def _date(text: str) -> date:
    return date.fromisoformat(text)


def cmd_services(args) -> int:
    from tally import services

    settings = config.load()
    if args.action == "up":
        settings = services.up(settings)
        for name, state in services.status(settings).items():
            print(f"{name}: {state}")
    elif args.action == "down":
        stopped = services.down(settings)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    else:
        for name, state in services.status(settings).items():
            print(f"{name}: {state}")
    return 0


def cmd_web(args) -> int:
    """The finance workbench: in the background (default) or in this process (--foreground)."""
    from tally import pipeline, services
    from tally.services import web

    settings = config.load()
    if settings.pg.embedded or settings.s3.embedded:
        # The local path: the warehouse and zones the workbench shows, as `tally run` does,
        # and the workbench's own tables.
        settings = services.up(settings)
        pipeline.prepare(settings)
    elif not settings.web.secret_key:
        # Real services are set up by whoever runs the pipeline (compose: airflow-init); the
        # workbench only needs the key that signs its sessions.
        settings = services.ensure_secrets(settings)
    if args.foreground:
        print(f"Tally workbench on {web.url(settings)} (Ctrl-C stops it)", flush=True)
        web.serve(settings)
        return 0
    running = web.status(settings) != "stopped"
    address = web.start(settings)
    print(f"Tally workbench {'already running' if running else 'started'}: {address}")
    print(f"  log: {web.log_file(settings)}; stop it with `tally services down`")
    return 0


def cmd_generate(args) -> int:
    from tally.devtools import generator

    day = generator.generate_day(args.date, args.scale, Path(args.out), seed=args.seed,
                                 late=tuple(args.late))
    for name, path in day.files.items():
        print(f"{name}: {path}")
    print(f"labels: {day.labels}")
    return 0


def print_summary(summary: dict) -> None:
    gate = {True: "passed", False: "FAILED", None: "not run"}[summary["gate_passed"]]
    files = ", ".join(f"{n} {s}" for s, n in sorted(summary["files"].items())) or "none"
    print(f"Business date  {summary['business_date']}  (run {summary['run_id']})")
    print(f"  files        {files}")
    print(f"  rows landed  {summary['rows_loaded']}")
    print(f"  reconciled   {summary['reconciled']} rows in "
          f"{len(summary['match_rate'])} projects")
    print(f"  matched      {summary['matched']}")
    print(f"  suspense     {summary['suspense']}")
    print(f"  breaks       {summary['breaks']}")
    for project, rate in summary["match_rate"].items():
        print(f"  match rate   {rate:.2%}  {project}")
    for project, sources in summary.get("incomplete", {}).items():
        print(f"  incomplete   {project}: awaiting {sources} (its rows wait; no breaks raised)")
    for item in summary.get("unregistered_accounts", []):
        print(f"  UNREGISTERED {item['account']} ({item['source']}, {item['bookings']} bookings):"
              " not reconciled; register it in include/accounts.yaml")
    print(f"  gate         {gate}")
    print(f"  report       {summary['report'] or 'not published'}")


def run_day(settings, business_date: date, sources: list[str] | None = None,
            dry_run: bool = False) -> int:
    """Run tally_daily for one date with `airflow dags test`; print the outcome."""
    from tally import airflow_local, pipeline, services

    settings = services.up(settings)
    log = settings.home / "logs" / f"run-{business_date.isoformat()}.log"
    started = time.monotonic()
    code = airflow_local.dags_test(settings, business_date, log_file=log,
                                   conf={"sources": sources or None, "dry_run": dry_run})
    summary = pipeline.day_summary(settings, business_date)
    print_summary(summary)
    print(f"  took         {time.monotonic() - started:.1f}s; Airflow log: {log}")
    expected = "dry_run" if dry_run else "published"
    if code != 0 or summary["run_status"] != expected:
        print(f"The day was not {'checked' if dry_run else 'published'} (airflow exit {code}, "
              f"run {summary['run_status']}); see {log}", file=sys.stderr)
        return 1
    return 0


def cmd_run(args) -> int:
    return run_day(config.load(), args.date, sources=args.sources, dry_run=args.dry_run)


def cmd_backfill(args) -> int:
    """Dates in order, each a full daily run; the first failure stops the rest."""
    from tally import pipeline

    settings = config.load()

    def run_one(settings, day, dry_run=False):
        if run_day(settings, day, dry_run=dry_run) != 0:
            raise SystemExit(f"{day} failed: the dates after it were not run")
        return {"run_id": pipeline.day_summary(settings, day)["run_id"]}

    last = args.to_date if args.command == "backfill" else None
    done = pipeline.run_in_order(settings, args.from_date, last, run=run_one,
                                 dry_run=args.dry_run)
    print(f"reconciled {len(done)} date(s) in order from {args.from_date}")
    return 0


def cmd_demo(args) -> int:
    """Generate the embedded sample business day into the inbox, then run it end to end."""
    from tally.devtools import generator

    settings = config.load()
    generator.generate_day(args.date, args.scale, settings.inbox_dir, seed=args.seed)
    code = run_day(settings, args.date)
    if code == 0:
        demo_workbench(settings)
    return code


# Maker-checker needs two people: the demo makes one of each role that works a break.
DEMO_PEOPLE = (("admin", "admin"), ("operator", "operator"), ("approver", "approver"))


def demo_workbench(settings) -> None:
    """Leave the workbench running on the demo's warehouse, with people to sign in as: each
    password is printed when its user is made, once; a later demo says the users exist."""
    from tally import services
    from tally.services import web
    from tally.workbench import users
    from tally.workbench.access import Invalid

    settings = services.up(settings)
    address = web.start(settings)
    print(f"\nWorkbench      {address}  (stop it with `tally services down`)")
    with _workbench_connection() as conn:
        for name, role in DEMO_PEOPLE:
            try:
                password = users.add(conn, name, role, actor="demo")
                print(f"  sign in as   {name} / {password}  ({role}; shown this once)")
            except Invalid:
                print(f"  sign in as   {name}  ({role}; its password was shown when the first "
                      "demo made it: `tally users add` makes another user)")


def cmd_upload(args) -> int:
    from tally import landing, services, sources, storage, warehouse
    from tally.services import postgres

    settings = services.up(config.load())
    configs = sources.load_all(settings)
    if args.source not in configs:
        print(f"unknown source {args.source!r}; configured: {', '.join(configs)}",
              file=sys.stderr)
        return 2
    path = Path(args.file)
    with postgres.connect(settings, autocommit=True) as conn:
        # The tables a landing needs, and nothing else: the BI role's grants (prepare) would
        # rewrite the catalog rows of tables a run's dbt is swapping at the same moment
        # ("tuple concurrently updated"). A landing never waits for a run (pipeline.py).
        warehouse.ensure_schema(conn, configs)
        result = landing.land_bytes(settings, conn, storage.client(settings),
                                    configs[args.source], args.date, path.read_bytes(),
                                    path.name)
    print(f"{result.status}: file {result.file_id} s3://{settings.s3.raw_bucket}/"
          f"{result.raw_key}")
    return 0


def cmd_summary(args) -> int:
    from tally import pipeline

    summary = pipeline.day_summary(config.load(), args.date)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print_summary(summary)
    return 0


def cmd_gate(args) -> int:
    from tally import gate

    settings = config.load()
    if args.action == "init":
        print("validations: " + ", ".join(gate.init_project(settings)))
        return 0
    result = gate.run(settings, args.date)
    print(result.summary())
    return 0 if result.passed else 1


def _workbench_connection():
    """The warehouse, with the workbench's tables, for the commands that manage it."""
    from tally import services
    from tally.services import postgres
    from tally.workbench import schema

    settings = services.up(config.load())
    conn = postgres.connect(settings, autocommit=True)
    schema.ensure(conn)
    return conn


def cmd_users(args) -> int:
    from tally.workbench import users
    from tally.workbench.access import Invalid, NotFound

    with _workbench_connection() as conn:
        try:
            if args.action == "add":
                password = users.add(conn, args.name, args.role, args.language,
                                     args.display_name, actor="cli")
                print(f"user {args.name} ({args.role}) added; password, shown this once:")
                print(password)
            else:
                token = users.create_token(conn, args.name, args.token_name, actor="cli")
                print(f"API token for {args.name}, shown this once (send it as "
                      "'Authorization: Bearer <token>'):")
                print(token)
        except (Invalid, NotFound) as exc:
            print(exc, file=sys.stderr)
            return 2
    return 0


def cmd_audit(args) -> int:
    from tally.workbench import audit

    with _workbench_connection() as conn:
        if args.action == "verify":
            result = audit.verify(conn)
            print(result.text(), file=sys.stdout if result.ok else sys.stderr)
            return 0 if result.ok else 1
        if not (args.from_date and args.to_date):
            print("audit export needs --from and --to", file=sys.stderr)
            return 2
        out = Path(args.out or f"audit-{args.from_date}-{args.to_date}.jsonl")
        count = audit.export(conn, args.from_date, args.to_date, out)
        print(f"{count} audit records ({args.from_date} to {args.to_date}) written to {out}")
    return 0


def cmd_bench(args) -> int:
    from tally.devtools import bench

    if args.days < 1:
        raise SystemExit("--days is at least 1")
    if args.days > 1 and args.no_dbt:
        raise SystemExit("--no-dbt stops one day after loading; consecutive days are each "
                         "reconciled")
    settings = bench.bench_settings(config.load(), slot=args.slot)
    results = []
    for rows in args.rows:
        if args.days == 1:
            result = bench.run(rows, settings, with_dbt=not args.no_dbt,
                               with_baselines=not args.no_baselines, keep_services=args.keep)
            print(f"\n{rows:,} platform transactions\n{bench.table(result)}", flush=True)
        else:
            result = bench.run_days(rows, args.days, settings, keep_services=args.keep)
            print(f"\n{rows:,} platform transactions a day, {args.days} days\n"
                  f"{bench.days_table(result)}\n{bench.flat_cost_text(result)}", flush=True)
        results.append(result)
        everything = bench.save(results, Path(args.out))  # after each scale: keep what is done
        bench.write_markdown(everything, Path(args.markdown))
    print(f"results: {args.out}, {args.markdown}")
    failed = [r["rows"] for r in results if bench.failed(r)]
    if failed:
        print(f"the bench failed (a stage, or the gate) at {failed} transactions", file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tally", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("services", help="start, stop or show the embedded PostgreSQL and S3 "
                                        "(down and status: the workbench's server too)")
    p.add_argument("action", choices=["up", "down", "status"])
    p.set_defaults(func=cmd_services)

    p = sub.add_parser("web", help="serve the finance workbench (in the background, or with "
                                   "--foreground in this process)")
    p.add_argument("--foreground", action="store_true",
                   help="serve in this process until interrupted (a container's command)")
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("generate", help="write a sample business day for every source")
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--scale", type=int, default=1000, help="platform transactions")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--late", action="append", default=[], metavar="SOURCE",
                   help="hold this source's file back (written under OUT/late/) as a late file")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("run", help="run the daily DAG for a business date (airflow dags test)")
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--sources", nargs="+", metavar="SOURCE",
                   help="land and load only these sources")
    p.add_argument("--dry-run", action="store_true", help="stop after the gate; publish nothing")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("backfill", help="run the daily DAG for each date of a range, in order")
    p.add_argument("--from", dest="from_date", type=_date, required=True)
    p.add_argument("--to", dest="to_date", type=_date, required=True)
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("rerun", help="run a date again (a late file), then each later date it "
                                     "changes, in order")
    p.add_argument("--from", dest="from_date", type=_date, required=True)
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("demo", help="generate the sample day into the inbox and run it")
    p.add_argument("--date", type=_date, default=_date(DEMO_DATE))
    p.add_argument("--scale", type=int, default=1000)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("upload", help="land one statement file by hand")
    p.add_argument("--source", required=True)
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("file")
    p.set_defaults(func=cmd_upload)

    p = sub.add_parser("summary", help="print a business date's outcome")
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("gate", help="write the GX project, or run the gate for a date")
    p.add_argument("action", choices=["init", "run"])
    p.add_argument("--date", type=_date)
    p.set_defaults(func=cmd_gate)
    p = sub.add_parser("users", help="the workbench's users: add one, or give one an API token")
    users = p.add_subparsers(dest="action", required=True)
    q = users.add_parser("add", help="add a user; prints a generated password once")
    q.add_argument("name")
    q.add_argument("--role", required=True, choices=["viewer", "operator", "approver", "admin"])
    q.add_argument("--language", default="zh", choices=["zh", "en"])
    q.add_argument("--display-name")
    q.set_defaults(func=cmd_users)
    q = users.add_parser("token", help="a new API token for a user; printed once")
    q.add_argument("name")
    q.add_argument("--token-name", default="api", help="what the token is for")
    q.set_defaults(func=cmd_users)

    p = sub.add_parser("audit", help="check the workbench's audit trail, or export a range")
    p.add_argument("action", choices=["verify", "export"])
    p.add_argument("--from", dest="from_date", type=_date)
    p.add_argument("--to", dest="to_date", type=_date)
    p.add_argument("--out", help="JSON lines file (default audit-FROM-TO.jsonl)")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("bench", help="time each pipeline stage on a generated day (or K days)")
    p.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000],
                   help="platform transactions a day, one run per value")
    p.add_argument("--days", type=int, default=1, metavar="K",
                   help="reconcile K consecutive days on one warehouse, each day timed (no "
                        "parse or baselines); only day 2 and the last two days are published")
    p.add_argument("--slot", type=int, default=0, metavar="N",
                   help="ports for the bench's services (0-8), to run beside another "
                        "checkout's bench")
    p.add_argument("--no-dbt", action="store_true", help="stop after loading (one day)")
    p.add_argument("--no-baselines", action="store_true", help="skip tally.devtools.baselines")
    p.add_argument("--keep", action="store_true",
                   help="leave the bench's services running with the days loaded (profiling)")
    p.add_argument("--out", default="docs/benchmarks.json")
    p.add_argument("--markdown", default="docs/benchmarks.md")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
