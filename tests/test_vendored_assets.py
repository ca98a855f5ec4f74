"""The console's front-end files are vendored, pinned by SHA-256, and nothing points at another host.

Offline: tools/vendor_assets.py is what re-fetches them from the npm registry (never run by the tests).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[1] / "hub" / "web"
VENDOR = WEB / "static" / "vendor"
TERMINAL_PAGE = Path(__file__).resolve().parents[1] / "edge_agent" / "terminal" / "page"
MANIFEST = VENDOR / "MANIFEST.json"

# What a page may load: the console's own files. Every http(s) URL outside a comment is a reference to
# a host, except loopback and the XML namespace names of inline SVG, which browsers never fetch.
_URL = re.compile(r"""https?://[^\s"'<>()]+""", re.IGNORECASE)
_ALLOWED_URL = re.compile(
    r"https?://(127\.0\.0\.1|localhost)([:/]|$)|http://www\.w3\.org/(2000/svg|1999/xlink|1999/xhtml)$",
    re.IGNORECASE,
)
# A protocol-relative reference ("//cdn.example/x.js") in an attribute, a CSS url() or an @import.
_PROTOCOL_RELATIVE = re.compile(
    r"""(?:\b(?:src|href|action|poster|srcset|data)\s*=\s*["']?|url\(\s*["']?|@import\s+["'])(//[^/\s"'()<>][^\s"'()<>]*)""",
    re.IGNORECASE,
)
_COMMENTS = {
    ".js": (re.compile(r"/\*.*?\*/", re.DOTALL),),
    ".css": (re.compile(r"/\*.*?\*/", re.DOTALL),),
    ".html": (re.compile(r"<!--.*?-->", re.DOTALL), re.compile(r"\{#.*?#\}", re.DOTALL)),
    ".svg": (re.compile(r"<!--.*?-->", re.DOTALL),),
}
_COMMENTS[".j2"] = _COMMENTS[".jinja"] = _COMMENTS[".htm"] = _COMMENTS[".html"]
_COMMENTS[".mjs"] = _COMMENTS[".js"]


def foreign_references(text: str, suffix: str) -> list[str]:
    """Every reference to another host in a template or static file, comments left out.

    Only block comments are removed from JS and CSS (a `//` line comment is not told apart from a
    string here), so a URL in a `//` comment is reported too: write it in a block comment.
    """
    for comment in _COMMENTS.get(suffix.lower(), ()):
        text = comment.sub("", text)
    found = [url for url in _URL.findall(text) if not _ALLOWED_URL.match(url)]
    found += _PROTOCOL_RELATIVE.findall(text)
    return found


def _manifest_entries() -> list[dict[str, str]]:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))["files"]


def test_every_vendored_file_is_in_the_manifest_with_its_sha256() -> None:
    entries = _manifest_entries()
    listed = {entry["file"] for entry in entries}
    present = {p.name for p in VENDOR.iterdir()} - {MANIFEST.name}
    assert present == listed
    for entry in entries:
        data = (VENDOR / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["file"]


def test_the_manifest_names_package_version_and_registry_tarball() -> None:
    versions = {entry["package"]: entry["version"] for entry in _manifest_entries()}
    assert set(versions) == {"htmx.org", "htmx-ext-sse", "uplot"}
    assert versions["htmx.org"].startswith("2.0.")
    assert versions["htmx-ext-sse"].startswith("2.")
    assert versions["uplot"].startswith("1.6.")
    for entry in _manifest_entries():
        package, version = entry["package"], entry["version"]
        assert entry["tarball"] == f"https://registry.npmjs.org/{package}/-/{package}-{version}.tgz"
        assert entry["tarball_integrity"].startswith("sha512-")
    licences = {entry["package"] for entry in _manifest_entries() if entry["member"] == "package/LICENSE"}
    assert licences == set(versions)


def _is_vendor_metadata(path: Path) -> bool:
    """The licences and the manifest: they name hosts, and no page loads them."""
    return path.parent == VENDOR and (path.name.startswith("LICENSE") or path == MANIFEST)


def _served_files() -> list[Path]:
    roots = [root for root in (WEB / "templates", WEB / "static", TERMINAL_PAGE) if root.is_dir()]
    return [
        path
        for root in roots
        for path in sorted(root.rglob("*"))
        if path.is_file() and not _is_vendor_metadata(path)
    ]


def test_no_template_or_static_file_refers_to_another_host() -> None:
    files = _served_files()
    assert VENDOR / "htmx.min.js" in files
    offenders = {
        str(path): refs
        for path in files
        if (refs := foreign_references(path.read_text(encoding="utf-8", errors="replace"), path.suffix))
    }
    assert offenders == {}
    assert TERMINAL_PAGE / "terminal.js" in files  # the entrance terminal's page is scanned too


@pytest.mark.parametrize(
    ("text", "suffix", "expected"),
    [
        ('<img src="http://example.com/x.png">', ".html", ["http://example.com/x.png"]),
        ('<script src="//cdn.example.org/htmx.js"></script>', ".html", ["//cdn.example.org/htmx.js"]),
        ("body { background: url(https://fonts.example/a.woff2) }", ".css", ["https://fonts.example/a.woff2"]),
        ("@import '//fonts.example/css';", ".css", ["//fonts.example/css"]),
        ('fetch("https://api.example.net/x")', ".js", ["https://api.example.net/x"]),
        ("<!-- see https://htmx.org/docs/ --><p>x</p>", ".html", []),
        ("{# from https://example.com #}<p>x</p>", ".html", []),
        ("/*! https://github.com/leeoniya/uPlot (v1.6.32) */ var u=1;", ".js", []),
        ('<a href="http://127.0.0.1:8080/board">', ".html", []),
        ('<svg xmlns="http://www.w3.org/2000/svg"></svg>', ".html", []),
        ('<img src="/static/x.png">', ".html", []),
    ],
)
def test_the_scan_finds_foreign_references_outside_comments(
    text: str, suffix: str, expected: list[str]
) -> None:
    assert foreign_references(text, suffix) == expected
