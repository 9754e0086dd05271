"""The workbench's vendored browser libraries: fetched from the npm registry here, by a developer,
and committed; the product never fetches anything at run time (no CDN: finance users' browsers
may reach nothing but the workbench).

`make vendor` (python -m tally.devtools.vendor_assets) runs `npm pack` for each pinned package,
copies its minified file and its licence into plugins/tally/workbench/static/vendor/, writes
VENDORED.md (package, version, file, sha256, licence) and checks the files against it.
`--check` fetches again and only compares: nothing is written, and it fails on any difference.
`--verify` only checks the committed files against VENDORED.md, offline.

To move to a new version: change the pin in ASSETS, run `make vendor`, commit what changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tally.config import PACKAGE_DIR

VENDOR_DIR = PACKAGE_DIR / "workbench" / "static" / "vendor"
MANIFEST = "VENDORED.md"


@dataclass(frozen=True)
class Asset:
    package: str  # the npm package
    version: str  # exact: the bytes must not change under us
    source: str  # the minified file inside the package
    target: str  # its name under static/vendor/


ASSETS = (
    Asset("htmx.org", "2.0.11", "dist/htmx.min.js", "htmx.min.js"),
    Asset("echarts", "6.1.0", "dist/echarts.min.js", "echarts.min.js"),
)
# Licence texts shipped beside the code; Apache-2.0 asks for the NOTICE file as well.
LICENCE_FILES = ("LICENSE", "NOTICE")


@dataclass(frozen=True)
class Fetched:
    asset: Asset
    licence: str  # the SPDX identifier in the package's package.json
    integrity: str  # npm's sha512 of the tarball, checked by npm against the registry
    files: dict[str, bytes]  # target name -> bytes


def _npm() -> str:
    found = shutil.which("npm")
    if not found:
        raise SystemExit("npm is needed to fetch the vendored assets (Debian: apt-get install npm)")
    return found


def fetch(asset: Asset, workdir: Path) -> Fetched:
    """`npm pack` the pinned version (npm checks the tarball's integrity) and read the files
    we ship out of it."""
    result = subprocess.run(
        [_npm(), "pack", f"{asset.package}@{asset.version}", "--json", "--silent",
         "--pack-destination", str(workdir)],
        capture_output=True, text=True, check=True, cwd=workdir,
    )
    (packed,) = json.loads(result.stdout)
    with tarfile.open(workdir / packed["filename"]) as tar:
        def read(name: str) -> bytes | None:
            try:
                return tar.extractfile(f"package/{name}").read()
            except KeyError:
                return None

        meta = json.loads(read("package.json"))
        if meta["version"] != asset.version:
            raise RuntimeError(f"{asset.package}: asked for {asset.version}, got {meta['version']}")
        code = read(asset.source)
        if code is None:
            raise RuntimeError(f"{asset.package} {asset.version} has no {asset.source}")
        files = {asset.target: code}
        for name in LICENCE_FILES:
            text = read(name)
            if text is not None:
                files[f"{asset.package}.{name}"] = text
    if f"{asset.package}.LICENSE" not in files:
        raise RuntimeError(f"{asset.package} {asset.version} ships no LICENSE file")
    return Fetched(asset, meta["license"], packed["integrity"], files)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest(fetched: list[Fetched]) -> str:
    lines = [
        "# Vendored browser libraries",
        "",
        "Written by `make vendor` (plugins/tally/devtools/vendor_assets.py) from the npm",
        "registry; do not edit by hand. The workbench serves these files itself: no page loads",
        "anything from another host.",
        "",
        "| package | version | file | sha256 | licence |",
        "| --- | --- | --- | --- | --- |",
    ]
    for item in fetched:
        for name, data in item.files.items():
            lines.append(f"| {item.asset.package} | {item.asset.version} | `{name}` | "
                         f"`{_sha256(data)}` | {item.licence} |")
    lines += ["", "npm tarball integrity (sha512, as the registry publishes it):", ""]
    lines += [f"- {i.asset.package}@{i.asset.version}: `{i.integrity}`" for i in fetched]
    return "\n".join(lines) + "\n"


ROW = re.compile(r"^\| (?P<package>\S+) \| (?P<version>\S+) \| `(?P<file>[^`]+)` \| "
                 r"`(?P<sha256>[0-9a-f]{64})` \| (?P<licence>[^|]+) \|$")


def verify(directory: Path = VENDOR_DIR) -> list[str]:
    """What is wrong with the vendored files: each one listed in VENDORED.md with its hash,
    nothing unlisted, and the pins of ASSETS are the versions listed. Empty when all is well."""
    path = directory / MANIFEST
    if not path.exists():
        return [f"{path} is missing: run make vendor"]
    rows = [m.groupdict() for m in map(ROW.match, path.read_text().splitlines()) if m]
    problems = []
    for row in rows:
        file = directory / row["file"]
        if not file.exists():
            problems.append(f"{row['file']} is listed but missing")
        elif _sha256(file.read_bytes()) != row["sha256"]:
            problems.append(f"{row['file']} does not match its sha256 in {MANIFEST}")
    listed = {row["file"] for row in rows} | {MANIFEST}
    problems += [f"{p.name} is not listed in {MANIFEST}" for p in sorted(directory.iterdir())
                 if p.name not in listed]
    versions = {row["package"]: row["version"] for row in rows}
    for asset in ASSETS:
        if versions.get(asset.package) != asset.version:
            problems.append(f"{asset.package} is pinned at {asset.version} but "
                            f"{MANIFEST} lists {versions.get(asset.package)}")
        if asset.target not in listed:
            problems.append(f"{asset.target} ({asset.package}) is not vendored")
    return problems


def _source_of(name: str, fetched: list[Fetched]) -> str:
    for item in fetched:
        if name in item.files:
            return f"{item.asset.package}@{item.asset.version}"
    return "what make vendor writes"


def vendor(directory: Path = VENDOR_DIR, write: bool = True) -> list[str]:
    """Fetch every asset; write them (or, without `write`, compare them with what is there).
    Returns the differences found (empty after writing)."""
    with tempfile.TemporaryDirectory(prefix="tally-vendor-") as tmp:
        fetched = [fetch(asset, Path(tmp)) for asset in ASSETS]
    wanted = {name: data for item in fetched for name, data in item.files.items()}
    wanted[MANIFEST] = manifest(fetched).encode()
    if not write:
        return [f"{name} differs from {_source_of(name, fetched)}"
                for name, data in wanted.items()
                if not (directory / name).exists() or (directory / name).read_bytes() != data
                ] + verify(directory)
    if directory.exists():
        shutil.rmtree(directory)  # a file of an older version must not stay behind
    directory.mkdir(parents=True)
    for name, data in wanted.items():
        (directory / name).write_bytes(data)
    return verify(directory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vendor_assets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="fetch again and compare with the committed files; write nothing")
    mode.add_argument("--verify", action="store_true",
                      help="check the committed files against VENDORED.md (offline)")
    args = parser.parse_args(argv)
    problems = verify() if args.verify else vendor(write=not args.check)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"vendored: {', '.join(f'{a.package}@{a.version}' for a in ASSETS)} "
              f"in {VENDOR_DIR} (sha256 in {MANIFEST})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
