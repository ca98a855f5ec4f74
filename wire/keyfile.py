"""Private key files: the key alone, 64 lowercase hex characters and a newline, readable by its owner only.

`hall-hub keygen --out FILE` and `hall-edge keygen --out FILE` write one (`keygen`); both configs'
`private_key_file` reads one back (`read_private`), refusing anything but the key alone.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

from wire.envelope import HEX64_RE, KeyPair, generate_keypair


class KeyFileError(ValueError):
    """A key file that cannot be written or used; the message names the file and the problem."""


def create_private(path: Path, encoding: str = "ascii") -> TextIO:
    """`path` made new for writing, readable by its owner only (mode 0600); an existing file is never
    opened, so a key in use is never overwritten. Raises KeyFileError naming the file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(f"{path}: already exists; not overwritten (its key may be in use)") from exc
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create: {exc.strerror or exc}") from exc
    return os.fdopen(fd, "w", encoding=encoding)


def write_new(path: Path) -> KeyPair:
    """A new key pair whose private key is written to `path` (mode 0600); an existing file is kept."""
    out = create_private(path)
    pair = generate_keypair()
    with out:
        out.write(pair.private_hex + "\n")
    return pair


def read_private(path: Path, program: str) -> str:
    """The private key in `path`; `program` ("hall-hub", "hall-edge") names the keygen in the hint."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise KeyFileError(f"{path} does not exist") from exc
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    text = data.decode("ascii", errors="replace").strip()
    if HEX64_RE.match(text):
        _check_private(path)
        return text
    hint = f"make it with {program} keygen --out FILE"
    if "private_key" in text:
        raise KeyFileError(f"{path}: holds `private_key = ...` lines (keygen's printed output), "
                           f"not the key alone; {hint}")
    raise KeyFileError(f"{path}: must hold 64 lowercase hex characters (the private key alone; {hint})")


def _check_private(path: Path) -> None:
    """Refuse a key file that group or others may read or write, as ssh refuses such keys."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise KeyFileError(f"{path}: mode {mode:04o} lets others read the private key; "
                           f"`chmod 600 {path}` (owned by the service user)")


def keygen(out: Path | None) -> int:
    """The `keygen` command of both CLIs: with `out`, the private key goes to that file; exit code."""
    if out is None:
        pair = generate_keypair()
        print(f"private_key = \"{pair.private_hex}\"")
        print(f"public_key = \"{pair.public_hex}\"")
        return 0
    try:
        pair = write_new(out)
    except KeyFileError as exc:
        print(f"错误 error: {exc}", file=sys.stderr)
        return 2
    print(f"private key written to {out} (mode 0600); paste the public key into the other side's config:",
          file=sys.stderr)
    print(f"public_key = \"{pair.public_hex}\"")
    return 0
