"""Who writes a manual log entry: the `author` stamped into its data and, with an operator's key
(`--sign-with FILE`), the operator's signature over it (wire/provenance.py says what is checked).

The store stamps every entry of a manual kind it appends (`Store.authored`), so that the signature
covers what the entry holds in the end (a leave's id, a complaint's number, chosen under the writer
lock). Operator key files: `hall-hub operator keygen --out FILE --name NAME` (hub/operators.py).
"""

from __future__ import annotations

import getpass
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from wire.envelope import HEX64_RE, PrivateKey, generate_keypair, load_private_key, public_hex_of
from wire.keyfile import KeyFileError, create_private
from wire.provenance import AUTHOR, MANUAL_KINDS, SIGNATURE, sign_data

Via = Literal["cli", "web", "hub"]
KEY_FILE_FORMAT = "hall-operator-key/1"


class OperatorKeyError(ValueError):
    """An operator key file that cannot be written or read; the message names the file."""


@dataclass(frozen=True)
class Author:
    by: str
    via: Via
    os_user: str | None = None
    host: str | None = None

    def as_data(self) -> dict[str, Any]:
        return {"by": self.by, "os_user": self.os_user, "host": self.host, "via": self.via}


@dataclass(frozen=True)
class OperatorKey:
    name: str
    key: PrivateKey

    @property
    def public_hex(self) -> str:
        return public_hex_of(self.key)


@dataclass(frozen=True)
class Provenance:
    """The author of what a command or a console request appends, and the operator key that signs it."""

    author: Author
    signer: OperatorKey | None = None

    def stamp(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        """`data` with `author` (and `signature`) when `kind` is a person's; other kinds unchanged."""
        if kind not in MANUAL_KINDS:
            return data
        stamped = {**{k: v for k, v in data.items() if k != SIGNATURE}, AUTHOR: self.author.as_data()}
        if self.signer is not None:
            stamped[SIGNATURE] = sign_data(self.signer.key, stamped)
        return stamped


def _login() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def cli_author(by: str) -> Author:
    """A command's author: `--by` NAME, with the OS user and host it ran as."""
    if not by.strip():
        raise ValueError("--by must name who takes this action (it is written in the log)")
    return Author(by.strip(), "cli", _login(), socket.gethostname())


def web_author(user: str) -> Author:
    """The console user logged in (the browser's host is not known to be true; none is recorded)."""
    return Author(user, "web")


def hub_author() -> Author:
    """The hub daemon itself (only the first roster of a new store)."""
    return Author("hall-hub", "hub", _login(), socket.gethostname())


def write_operator_key(path: Path, name: str) -> OperatorKey:
    """A new operator key pair, its private key written to `path` (mode 0600, never overwritten)."""
    if not name.strip():
        raise OperatorKeyError("--name must name the operator (as in hub.toml's [[operators]])")
    try:
        out = create_private(path, encoding="utf-8")
    except KeyFileError as exc:
        raise OperatorKeyError(str(exc)) from exc
    pair = generate_keypair()
    with out:
        json.dump({"format": KEY_FILE_FORMAT, "name": name.strip(), "private_key": pair.private_hex},
                  out, ensure_ascii=False)
        out.write("\n")
    return OperatorKey(name.strip(), load_private_key(pair.private_hex))


def read_operator_key(path: Path) -> OperatorKey:
    """The operator key in `path`; refused when others may read it or it is not an operator key."""
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode & 0o777
    except OSError as exc:
        raise OperatorKeyError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if mode & 0o077:
        raise OperatorKeyError(f"{path}: mode {mode:04o} lets others read the operator's key; "
                               f"`chmod 600 {path}`")
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    if not isinstance(found, dict) or found.get("format") != KEY_FILE_FORMAT \
            or not isinstance(found.get("name"), str) or not HEX64_RE.match(str(found.get("private_key"))):
        raise OperatorKeyError(f"{path}: not an operator key file (make one with "
                               "`hall-hub operator keygen --out FILE --name NAME`)")
    return OperatorKey(found["name"], load_private_key(found["private_key"]))
