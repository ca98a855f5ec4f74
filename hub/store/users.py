"""Console users and API tokens, kept in the hub store next to the log.

The `users` and `tokens` tables hold what must stay secret from the log (the scrypt hash of a
password, the SHA-256 of a token); every change is a log entry in the same transaction, naming who
made it and never holding a secret: `user_add` (name, role, staff; a city's user limited to some halls
also `halls`), `user_disable`, `token_issue`
(token id and user), `token_revoke`. Both tables are insert-only: a user counts only while its row
agrees with a verified `user_add` entry and no `user_disable` follows; a token only while its row has a
verified `token_issue` entry for that user and no `token_revoke`. A row slipped into a table outside
the log therefore gives no access.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

from sqlalchemy import insert, select

from hub.store.schema import tokens, users
from hub.store.store import Store
from wire.envelope import format_ts

Role = Literal["inspector", "manager", "staff"]
ROLES: tuple[Role, ...] = ("inspector", "manager", "staff")
ROLE_ZH: dict[str, str] = {"inspector": "督查", "manager": "中心负责人", "staff": "窗口人员"}
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # about 16 MiB and 50 ms per check
SALT_BYTES = 16


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    staff: str | None  # the roster id a staff account speaks for (None for inspector, manager)
    disabled: bool = False
    tokens: tuple[str, ...] = field(default=())  # ids of the tokens not revoked
    halls: tuple[str, ...] | None = None  # a city's user limited to these halls (None: every hall)

    def sees(self, hall: str) -> bool:
        return self.halls is None or hall in self.halls


def hash_password(password: str) -> str:
    """`scrypt$N$r$p$salt$hash`, salt and hash in base64 (the parameters travel with the hash)."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P),
                     base64.b64encode(salt).decode("ascii"), base64.b64encode(digest).decode("ascii")])


def password_matches(stored: str, password: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        wanted = base64.b64decode(digest)
        found = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(wanted))
    except ValueError:
        return False
    return hmac.compare_digest(found, wanted)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int = 32) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length,
                          maxmem=128 * r * n * p * 2)


def password_problem(password: str) -> str | None:
    """Why a new password is refused, in Chinese and English, or None."""
    if not password:
        return "密码为空 the password is empty (give it on stdin, one line)"
    if len(password) < MIN_PASSWORD:
        return f"密码太短 the password is shorter than {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"密码太长 the password is longer than {MAX_PASSWORD} characters"
    return None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_user(store: Store, name: str, role: Role, staff: str | None, password: str, by: str,
             halls: Sequence[str] | None = None) -> User:
    """A new user (names are never reused, even after `user_disable`). Refused (ValueError): a
    taken or malformed name, an unknown role, a staff account without its roster id, a weak password,
    an empty or malformed list of `halls` (a city's user limited to those halls; None: all)."""
    name = name.strip()
    if not name or len(name) > 64 or any(c.isspace() or not c.isprintable() for c in name):
        raise ValueError(f"user name {name!r}: 1 to 64 printable characters without spaces")
    if role not in ROLES:
        raise ValueError(f"role {role!r}: one of {', '.join(ROLES)}")
    if (role == "staff") != (staff is not None):
        raise ValueError("a staff account needs --staff (their roster id); other roles take none")
    problem = password_problem(password)
    if problem:
        raise ValueError(problem)
    limited = None if halls is None else _halls(halls)
    hashed = hash_password(password)
    data: dict[str, object] = {"name": name, "role": role, "staff": staff, "by": by}
    if limited is not None:  # a hall's own users' entries stay as they were
        data["halls"] = list(limited)
    with store.writing() as conn:
        if conn.execute(select(users.c.name).where(users.c.name == name)).first():
            raise ValueError(f"user {name!r} exists already (names are not reused)")
        chain = store.chain(conn)
        entry = chain.add("user_add", data, name)
        conn.execute(insert(users), [{"name": name, "role": role, "staff": staff, "password": hashed,
                                      "created_at": format_ts(entry.at),
                                      "halls": None if limited is None else ",".join(limited)}])
        chain.write(conn)
    return User(name, role, staff, halls=limited)


def _halls(halls: Sequence[str]) -> tuple[str, ...]:
    found = tuple(dict.fromkeys(h.strip() for h in halls))
    if not found or any(not h or "," in h or any(c.isspace() for c in h) for h in found):
        raise ValueError(f"--halls {','.join(halls)!r}: one or more hall ids, comma-separated")
    return found


def disable_user(store: Store, name: str, by: str) -> None:
    """Disable a user for good: no login, no token (its tokens stop working with it)."""
    found = find_user(store, name)
    if found is None:
        raise ValueError(f"no user {name!r}")
    if found.disabled:
        raise ValueError(f"user {name!r} is disabled already")
    store.append("user_disable", {"name": name, "by": by}, ref=name)


def issue_token(store: Store, name: str, by: str) -> tuple[str, str]:
    """(token id, token): the token is shown once; only its SHA-256 is kept."""
    found = find_user(store, name)
    if found is None or found.disabled:
        raise ValueError(f"no active user {name!r}")
    token = secrets.token_urlsafe(32)
    token_id = secrets.token_hex(4)
    with store.writing() as conn:
        chain = store.chain(conn)
        entry = chain.add("token_issue", {"id": token_id, "user": name, "by": by}, token_id)
        conn.execute(insert(tokens), [{"id": token_id, "user": name, "sha256": token_digest(token),
                                       "issued_at": format_ts(entry.at)}])
        chain.write(conn)
    return token_id, token


def revoke_tokens(store: Store, *, by: str, name: str | None = None, token_id: str | None = None
                  ) -> list[str]:
    """Revoke one token by id, or every token of a user; returns the ids revoked."""
    active = {t: u.name for u in all_users(store) for t in u.tokens}
    if token_id is not None:
        if token_id not in active:
            raise ValueError(f"no active token {token_id!r}")
        ids = [token_id]
    else:
        if name is None or find_user(store, name) is None:
            raise ValueError(f"no user {name!r}")
        ids = sorted(t for t, owner in active.items() if owner == name)
    for revoked in ids:
        store.append("token_revoke", {"id": revoked, "user": active[revoked], "by": by}, ref=revoked)
    return ids


def all_users(store: Store) -> list[User]:
    """Every user whose row agrees with its verified `user_add` entry, with its state from the log."""
    added = {str(e.data["name"]): e.data for e in store.entries("user_add")}
    disabled = {str(e.data["name"]) for e in store.entries("user_disable")}
    issued = {str(e.data["id"]): str(e.data["user"]) for e in store.entries("token_issue")}
    revoked = {str(e.data["id"]) for e in store.entries("token_revoke")}
    with store.reading() as conn:
        rows = conn.execute(select(users).order_by(users.c.created_at, users.c.name)).all()
        token_rows = conn.execute(select(tokens.c.id, tokens.c.user)).all()
    live: dict[str, list[str]] = {}
    for row in token_rows:
        if issued.get(row.id) == row.user and row.id not in revoked:
            live.setdefault(row.user, []).append(row.id)
    found = []
    for row in rows:
        logged = added.get(row.name)
        halls = None if row.halls is None else tuple(row.halls.split(","))
        logged_halls = logged.get("halls") if logged is not None else None
        if logged is None or (logged.get("role"), logged.get("staff")) != (row.role, row.staff) \
                or (None if logged_halls is None else tuple(logged_halls)) != halls:
            continue
        found.append(User(row.name, row.role, row.staff, row.name in disabled,
                          tuple(sorted(live.get(row.name, ()))), halls))
    return found


def find_user(store: Store, name: str) -> User | None:
    return next((u for u in all_users(store) if u.name == name), None)


def login_user(store: Store, name: str, password: str) -> User | None:
    """The active user with this name and password, else None (the same time spent either way)."""
    with store.reading() as conn:
        row = conn.execute(select(users.c.password).where(users.c.name == name)).first()
    stored = row.password if row is not None else _dummy_hash()
    if not password_matches(stored, password) or row is None:
        return None
    found = find_user(store, name)
    return found if found is not None and not found.disabled else None


def token_user(store: Store, token: str) -> User | None:
    """The active user a bearer token belongs to, else None (unknown, revoked, or user disabled)."""
    with store.reading() as conn:
        row = conn.execute(select(tokens.c.id, tokens.c.user)
                           .where(tokens.c.sha256 == token_digest(token))).first()
    if row is None:
        return None
    found = find_user(store, row.user)
    if found is None or found.disabled or row.id not in found.tokens:
        return None
    return found


@cache
def _dummy_hash() -> str:
    """Checked against for a name nobody has, so that a missing name costs a scrypt too."""
    return hash_password(secrets.token_urlsafe(16))
