"""A day's files arrive by file drop (local folder or S3) and by channel pulls configured in
include/pulls.yaml; each is landed once, with credentials only from the environment."""

import shutil
from dataclasses import replace
from datetime import date

import yaml

from tally import config, pipeline, storage
from tally.devtools import generator
from tally.devtools.samples import platform
from tests.vendors.bank_server import BankServer

DAY = date(2026, 11, 20)


def with_pulls(settings, tmp_path, pulls, **env):
    include = tmp_path / "include"
    shutil.copytree(settings.include_dir, include)
    (include / "pulls.yaml").write_text(yaml.safe_dump({"pulls": pulls}))
    return config.load({**settings.env, "TALLY_INCLUDE_DIR": str(include), **env})


def test_a_configured_bank_pull_lands_and_loads_and_not_ready_is_reported(clean, tmp_path):
    day = generator.build_day(DAY, 200, seed=3)
    account = sorted(day.openings)[0]
    statement = platform.bank_csv(day.bookings[day.bookings["account"] == account],
                                  day.openings[account])
    with BankServer(token="t0ken") as bank:
        bank.statements[(account, DAY.isoformat())] = statement
        bank.statements[("other", "2026-01-01")] = b""  # a second known account, not ready
        settings = with_pulls(clean, tmp_path, [
            {"name": "collection", "connector": "bank_api", "base_url": bank.url,
             "account": account, "source": "bank_csv", "secret": "COLLECTION_TOKEN"},
            {"name": "late", "connector": "bank_api", "base_url": bank.url,
             "account": "other", "source": "bank_csv", "secret": "COLLECTION_TOKEN"},
        ], TALLY_SECRET_COLLECTION_TOKEN="t0ken")
        landed = pipeline.land_day(settings, DAY)
    (only,) = landed["files"]
    assert only["source"] == "bank_csv" and only["status"] == "landed"
    assert [n.split(":")[0] for n in landed["not_ready"]] == ["late"]
    assert landed["failed"] == []
    loaded = pipeline.load_day(settings, DAY)
    assert loaded["loaded_rows"] == (day.bookings["account"] == account).sum()


def test_a_pull_with_a_wrong_secret_fails_clearly_and_the_day_goes_on(clean, tmp_path):
    with BankServer(token="right") as bank:
        bank.statements[("A1", DAY.isoformat())] = b"x"
        settings = with_pulls(clean, tmp_path, [
            {"name": "collection", "connector": "bank_api", "base_url": bank.url,
             "account": "A1", "source": "bank_csv", "secret": "TOKEN"}],
            TALLY_SECRET_TOKEN="wrong")
        generator.generate_day(DAY, 60, settings.inbox_dir, seed=1)
        landed = pipeline.land_day(settings, DAY)
    assert len(landed["failed"]) == 1 and landed["failed"][0].startswith("collection:")
    assert "401" in landed["failed"][0]
    assert landed["landed"] == len(landed["files"]) >= 7  # the file drop still landed


def test_an_s3_file_drop_is_picked_up_once(clean, s3, tmp_path):
    settings = replace(clean, inbox_bucket=clean.s3.raw_bucket.replace("raw", "inbox"),
                       inbox_prefix="drop/")
    storage.ensure_bucket(s3, settings.inbox_bucket)
    for key in storage.list_keys(s3, settings.inbox_bucket, ""):
        s3.delete_object(Bucket=settings.inbox_bucket, Key=key)
    day = generator.generate_day(DAY, 60, tmp_path / "gen", seed=2)
    path = day.files["platform_ledger"]
    s3.put_object(Bucket=settings.inbox_bucket,
                  Key=f"drop/platform_ledger/{DAY.isoformat()}/{path.name}",
                  Body=path.read_bytes())
    first = pipeline.land_day(settings, DAY)
    assert [(f["source"], f["name"], f["status"]) for f in first["files"]] == [
        ("platform_ledger", path.name, "landed")]
    assert pipeline.land_day(settings, DAY)["files"] == []
