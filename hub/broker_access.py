"""Who may log in to the hall's broker and what each user may publish and read.

One passwd file serves the embedded broker and Mosquitto 2.0: `user:hash` lines, the hash in the
format `mosquitto_passwd` writes (`$7$iterations$salt$hash`: PBKDF2-HMAC-SHA512, base64). The hub's
own user is `hub`; its secret (the hub has to log in too) is kept in plaintext next to the passwd
file, in `<passwd_file>.hub`, mode 0600. Every other user is a device, named by its device id.

`TopicAcl` is the one statement of the rules: the embedded broker's plugin asks it, and
`hall-hub broker export` writes it out as a Mosquitto ACL file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from wire import topics

HUB_USER = "hub"
PBKDF2_ITERATIONS = 50_000  # mosquitto_passwd writes 101; any count in the hash is honoured by both
SALT_BYTES = 12  # as mosquitto_passwd
HASH_BYTES = 64


class AccessError(ValueError):
    """A passwd file or a login that cannot be used; the message names the file and the problem."""


# --- hashes ------------------------------------------------------------------------------------


def new_secret() -> str:
    """A random password (32 characters of [A-Za-z0-9_-], 192 bits): nobody types it, it is pasted."""
    return secrets.token_urlsafe(24)


def hash_secret(secret: str, *, iterations: int = PBKDF2_ITERATIONS, salt: bytes | None = None) -> str:
    """The Mosquitto 2.0 form: `$7$iterations$salt_b64$hash_b64`."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations, HASH_BYTES)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_secret(secret: str, hashed: str) -> bool:
    """Whether `secret` matches a `$7$` (Mosquitto 2.0) or `$6$` (Mosquitto 1.x, salted SHA-512) hash."""
    parts = hashed.split("$")
    try:
        if len(parts) == 5 and parts[:2] == ["", "7"]:
            iterations, salt, expected = int(parts[2]), base64.b64decode(parts[3]), base64.b64decode(parts[4])
            actual = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations, len(expected))
        elif len(parts) == 4 and parts[:2] == ["", "6"]:
            salt, expected = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            actual = hashlib.sha512(secret.encode() + salt).digest()
        else:
            return False
    except ValueError:  # a bad iteration count or base64
        return False
    return hmac.compare_digest(actual, expected)


# --- the passwd file and the hub's secret -------------------------------------------------------


def read_passwd(path: Path) -> dict[str, str]:
    """User -> hash, in file order; a missing file is an empty one. Comments and blank lines skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise AccessError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from exc
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, colon, hashed = line.partition(":")
        if not colon or not user or not hashed.startswith(("$7$", "$6$")):
            raise AccessError(f"{path}:{number}: not a `user:$7$...` line (Mosquitto 2.0 passwd format)")
        users[user] = hashed
    return users


def write_passwd(path: Path, users: dict[str, str]) -> None:
    """Replace the passwd file at once (a reader never sees half of it), mode 0600."""
    _write_private(path, "".join(f"{user}:{hashed}\n" for user, hashed in users.items()))


def hub_secret_path(passwd: Path) -> Path:
    return passwd.with_name(passwd.name + ".hub")


def read_hub_secret(passwd: Path) -> str | None:
    """The hub's own password, kept next to the passwd file; None while `add-device` has not made it."""
    path = hub_secret_path(passwd)
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise AccessError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from exc
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise AccessError(f"{path}: mode {mode:04o} lets others read the hub's broker password; "
                          f"`chmod 600 {path}` (owned by the hub's user)")
    if not secret:
        raise AccessError(f"{path}: empty; delete it and run `hall-hub broker add-device` again")
    return secret


@dataclass(frozen=True)
class NewLogin:
    user: str
    secret: str  # shown once; only its hash is kept
    hub_created: bool  # the hub's own user was made (or repaired) along the way


def add_user(passwd: Path, user: str, *, rotate: bool = False) -> NewLogin:
    """A new random secret for `user`, its hash stored in `passwd` (created, mode 0600).

    Refuses a user that has one unless `rotate`. The hub's user is made along the way when missing.
    """
    if user == HUB_USER:
        raise AccessError(f'"{HUB_USER}" is the hub\'s own user, not a device')
    users = read_passwd(passwd)
    if user in users and not rotate:
        raise AccessError(f"{user} already has a broker password in {passwd}; "
                          "--rotate replaces it (the box then needs the new one)")
    hub_created = ensure_hub_user(passwd, users)
    secret = new_secret()
    users[user] = hash_secret(secret)
    write_passwd(passwd, users)
    return NewLogin(user, secret, hub_created)


def ensure_hub_user(passwd: Path, users: dict[str, str]) -> bool:
    """Make sure `users` has the hub's user and its secret file exists; True when something was made.

    `users` is updated in place; the caller writes the passwd file.
    """
    secret = read_hub_secret(passwd)
    if secret is not None and HUB_USER in users and verify_secret(secret, users[HUB_USER]):
        return False
    if secret is None:
        secret = new_secret()
        _write_private(hub_secret_path(passwd), secret + "\n")
    users[HUB_USER] = hash_secret(secret)
    return True


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --- topics ------------------------------------------------------------------------------------


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT matching of a topic name against a filter with `+` and `#`."""
    wanted, levels = topic_filter.split("/"), topic.split("/")
    for index, part in enumerate(wanted):
        if part == "#":
            return True
        if index >= len(levels) or (part != "+" and part != levels[index]):
            return False
    return len(wanted) == len(levels)


def covers(allowed: str, requested: str) -> bool:
    """Whether every topic that filter `requested` matches is matched by filter `allowed`."""
    granted, asked = allowed.split("/"), requested.split("/")
    for index, part in enumerate(granted):
        if part == "#":
            return True
        if index >= len(asked):
            return False
        if asked[index] == "#" or (part != "+" and asked[index] != part):
            return False
    return len(granted) == len(asked)


@dataclass(frozen=True)
class Grants:
    write: tuple[str, ...]
    read: tuple[str, ...]


@dataclass(frozen=True)
class TopicAcl:
    """PROTOCOL.md section 1 as rights: a device writes its own events and state and reads its
    commands, its watermark and the roster; the hub's user reads and writes the whole hall."""

    prefix: str
    hall: str
    devices: frozenset[str]

    def grants(self, user: str | None) -> Grants:
        p, h = self.prefix, self.hall
        if user == HUB_USER:
            return Grants(write=(f"{p}/{h}/#",), read=(f"{p}/{h}/#",))
        if user is None or user not in self.devices:
            return Grants((), ())
        return Grants(
            write=(topics.event(p, h, user, "#"), topics.state(p, h, user), topics.snapshot(p, h, user)),
            read=(topics.command(p, h, user, "#"), topics.committed(p, h, user), topics.roster(p, h)),
        )

    def may_publish(self, user: str | None, topic: str) -> bool:
        return any(matches(allowed, topic) for allowed in self.grants(user).write)

    def may_receive(self, user: str | None, topic: str) -> bool:
        return any(matches(allowed, topic) for allowed in self.grants(user).read)

    def may_subscribe(self, user: str | None, topic_filter: str) -> bool:
        """Only a filter wholly inside what the user may read: a device's `P/H/#` is refused."""
        return any(covers(allowed, topic_filter) for allowed in self.grants(user).read)

    def mosquitto_acl(self) -> str:
        """The same rules as a Mosquitto 2.0 `acl_file`."""
        lines = [f"# Topic ACL of hall {self.hall} under {self.prefix}, written by `hall-hub broker export`.",
                 "# The hub's user reads and writes the whole hall; each device only its own topics.", ""]
        for user in (HUB_USER, *sorted(self.devices)):
            grants = self.grants(user)
            lines.append(f"user {user}")
            both = [t for t in grants.write if t in grants.read]
            lines += [f"topic readwrite {t}" for t in both]
            lines += [f"topic write {t}" for t in grants.write if t not in both]
            lines += [f"topic read {t}" for t in grants.read if t not in both]
            lines.append("")
        return "\n".join(lines)
