"""Reading an exported audit bundle (a directory, or a .zip) and checking its manifest.

The bundle's format is written by `hub/export.py`; this side imports nothing of the hub.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wire.record import BUNDLE_FORMAT

MANIFEST = "manifest.json"
FILES = ("entries.jsonl", "roster_before.jsonl", "keys.json", "head.json")


class BundleError(ValueError):
    """A bundle that cannot be read, or whose files are not those its manifest lists."""


@dataclass(frozen=True)
class Bundle:
    manifest: dict[str, Any]
    entries: list[dict[str, Any]]
    roster_before: list[dict[str, Any]]
    keys: dict[str, Any]
    head: dict[str, Any]


def read_bundle(path: Path) -> Bundle:
    """The bundle's files, once every one matches the SHA-256 its manifest gives."""
    files = _files(path)
    if MANIFEST not in files:
        raise BundleError(f"{path}: 无清单 no {MANIFEST}: not an audit bundle")
    manifest = _json(files[MANIFEST], MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"清单格式不符 {MANIFEST}: format is not {BUNDLE_FORMAT}")
    listed = manifest.get("files")
    if not isinstance(listed, dict) or set(listed) != set(FILES):
        raise BundleError(f"清单所列文件不符 {MANIFEST} must list exactly {', '.join(FILES)}")
    extra = sorted(set(files) - set(FILES) - {MANIFEST})
    if extra:
        raise BundleError(f"清单外的文件 files not in the manifest: {', '.join(extra)}")
    for name in FILES:
        if name not in files:
            raise BundleError(f"缺少文件 {name} is missing from the bundle")
        digest = hashlib.sha256(files[name]).hexdigest()
        if digest != listed[name]:
            raise BundleError(f"文件被改动 {name} was changed after export: its SHA-256 is {digest}, "
                              f"the manifest says {listed[name]}")
    keys, head = _json(files["keys.json"], "keys.json"), _json(files["head.json"], "head.json")
    if not isinstance(keys, dict) or not isinstance(head, dict):
        raise BundleError("keys.json and head.json must each hold one JSON object")
    return Bundle(manifest, _lines(files["entries.jsonl"], "entries.jsonl"),
                  _lines(files["roster_before.jsonl"], "roster_before.jsonl"), keys, head)


def _files(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        return {item.name: item.read_bytes() for item in path.iterdir() if item.is_file()}
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as bundle:
            return {name: bundle.read(name) for name in bundle.namelist() if not name.endswith("/")}
    raise BundleError(f"{path}: 不是导出包 not a bundle directory or .zip")


def _json(data: bytes, name: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{name}: 无法解析 not JSON ({exc})") from exc


def _lines(data: bytes, name: str) -> list[dict[str, Any]]:
    found = []
    for number, line in enumerate(data.splitlines(), 1):
        value = _json(line, f"{name} line {number}")
        if not isinstance(value, dict):
            raise BundleError(f"{name} line {number}: not a JSON object")
        found.append(value)
    return found
