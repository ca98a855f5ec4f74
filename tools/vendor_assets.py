"""Fetch the console's vendored front-end files from the npm registry and check them.

The web console loads nothing from another host: htmx, its SSE extension and uPlot are copied into
hub/web/static/vendor/ with their licences, and hub/web/static/vendor/MANIFEST.json records, for
each file, the npm package, its version, the tarball it came from (with the registry's sha512
integrity of that tarball) and the file's SHA-256. tests/test_vendored_assets.py checks the files
against the manifest offline; this script is the only thing that touches the network, and neither
`make test` nor `make demo` runs it.

    python tools/vendor_assets.py          # re-fetch the pinned tarballs, verify their integrity, compare
                                           # them with the vendored files and the manifest (exit 1 if not)
    python tools/vendor_assets.py --write  # after changing PINS below: rewrite the files and the manifest

`make vendor` runs the first form. Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

VENDOR_DIR = Path(__file__).resolve().parents[1] / "hub" / "web" / "static" / "vendor"
MANIFEST_NAME = "MANIFEST.json"
DEFAULT_REGISTRY = "https://registry.npmjs.org"
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Pin:
    """One npm package at an exact version, and which of its members are vendored under which name."""

    package: str
    version: str
    files: dict[str, str]  # member path in the tarball -> file name in vendor/


PINS: tuple[Pin, ...] = (
    Pin("htmx.org", "2.0.11", {
        "package/dist/htmx.min.js": "htmx.min.js",
        "package/LICENSE": "LICENSE.htmx.org",
    }),
    Pin("htmx-ext-sse", "2.2.4", {
        "package/dist/sse.min.js": "htmx-ext-sse.min.js",
        "package/LICENSE": "LICENSE.htmx-ext-sse",
    }),
    Pin("uplot", "1.6.32", {
        "package/dist/uPlot.iife.min.js": "uPlot.iife.min.js",
        "package/dist/uPlot.min.css": "uPlot.min.css",
        "package/LICENSE": "LICENSE.uplot",
    }),
)


@dataclass(frozen=True)
class VendoredFile:
    """A file as it should be in vendor/: its bytes and its manifest entry."""

    name: str
    data: bytes
    entry: dict[str, str]


class VendorError(Exception):
    """The registry's answer cannot be trusted or used (bad integrity, a missing member)."""


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        return response.read()


def _check_integrity(data: bytes, integrity: str, url: str) -> None:
    algorithm, _, digest = integrity.partition("-")
    if algorithm not in ("sha512", "sha384", "sha256"):
        raise VendorError(f"{url}: unsupported integrity algorithm {algorithm!r}")
    actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if actual != digest:
        raise VendorError(f"{url}: {algorithm} is {actual}, the registry says {digest}")


def fetch(pin: Pin, registry: str) -> list[VendoredFile]:
    """Download one pinned package's tarball, verify it, and extract the vendored members."""
    meta = json.loads(_get(f"{registry}/{pin.package}/{pin.version}"))
    tarball: str = meta["dist"]["tarball"]
    integrity: str = meta["dist"]["integrity"]
    data = _get(tarball)
    _check_integrity(data, integrity, tarball)
    files = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member, name in pin.files.items():
            extracted = archive.extractfile(member)
            if extracted is None:
                raise VendorError(f"{tarball}: {member} is not a regular file")
            content = extracted.read()
            files.append(VendoredFile(name, content, {
                "file": name,
                "package": pin.package,
                "version": pin.version,
                "tarball": tarball,
                "tarball_integrity": integrity,
                "member": member,
                "sha256": hashlib.sha256(content).hexdigest(),
            }))
    return files


def manifest_text(files: list[VendoredFile]) -> str:
    manifest = {
        "about": "Front-end files from the npm registry; tools/vendor_assets.py checks and rewrites them",
        "files": [f.entry for f in sorted(files, key=lambda f: f.name)],
    }
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def compare(files: list[VendoredFile], vendor_dir: Path) -> list[str]:
    """Differences between the fetched files and what is vendored; empty when they agree."""
    problems = []
    for f in files:
        path = vendor_dir / f.name
        if not path.is_file():
            problems.append(f"{f.name}: missing")
        elif path.read_bytes() != f.data:
            problems.append(f"{f.name}: differs from {f.entry['member']} in {f.entry['tarball']}")
    expected = {f.name for f in files} | {MANIFEST_NAME}
    present = {p.name for p in vendor_dir.iterdir()} if vendor_dir.is_dir() else set()
    problems += [f"{name}: not in the manifest" for name in sorted(present - expected)]
    manifest = vendor_dir / MANIFEST_NAME
    if not manifest.is_file() or manifest.read_text(encoding="utf-8") != manifest_text(files):
        problems.append(f"{MANIFEST_NAME}: differs from the pinned packages")
    return problems


def write(files: list[VendoredFile], vendor_dir: Path) -> None:
    vendor_dir.mkdir(parents=True, exist_ok=True)
    keep = {f.name for f in files} | {MANIFEST_NAME}
    for stale in vendor_dir.iterdir():
        if stale.name not in keep:
            stale.unlink()
    for f in files:
        (vendor_dir / f.name).write_bytes(f.data)
    (vendor_dir / MANIFEST_NAME).write_text(manifest_text(files), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the vendored files and the manifest")
    parser.add_argument("--registry", default=DEFAULT_REGISTRY, help="npm registry (default: %(default)s)")
    parser.add_argument("--vendor-dir", type=Path, default=VENDOR_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    registry = args.registry.rstrip("/")
    try:
        files = [f for pin in PINS for f in fetch(pin, registry)]
    except (OSError, VendorError, KeyError, tarfile.TarError, json.JSONDecodeError) as exc:
        print(f"vendor_assets: {exc}", file=sys.stderr)
        return 2
    if args.write:
        write(files, args.vendor_dir)
        for f in files:
            print(f"{f.name}  {f.entry['package']}@{f.entry['version']}  {f.entry['sha256']}")
        return 0
    problems = compare(files, args.vendor_dir)
    for problem in problems:
        print(f"vendor_assets: {problem}", file=sys.stderr)
    if not problems:
        pinned = ", ".join(f"{p.package}@{p.version}" for p in PINS)
        print(f"vendor_assets: {len(files)} files match {pinned}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
