"""Who wrote a log entry: the `author` a manual entry names and the operator's `signature` over it.

Shared by `hall-hub log verify` (hub/audit.py) and `hall-verify` (verifier/): imports only wire and
PyNaCl. Every entry is one of three things, by its kind:
- a device's (`event`, `quarantine`): signed by the device, or refused and kept as such;
- the hub's own derived entry (`HUB_KINDS`: seq gaps and resets, device state, clock drift,
  findings, daily closes, monthly reports, snapshot purges, the upward feed's deliveries): written by
  the hub, no author;
- a person's (`MANUAL_KINDS`): its data holds `author` {by, os_user, host, via: cli|web} and, when
  the operator signed it (`--sign-with`), `signature` {key, sig}: Ed25519 over the canonical form of
  the data without `signature`, `key` the id of the operator's public key (`key_id`). The one manual
  entry the hub authors itself (`via: "hub"`) is the first roster of a new store.

The operator keys in force are those of the last `roster` entry before the entry checked (an entry
that introduces a key is not vouched for by that key).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nacl.exceptions import BadSignatureError

from wire.envelope import HEX64_RE, SIG_RE, PrivateKey, PublicKey, canonical, load_public_key, public_hex_of

AUTHOR = "author"
SIGNATURE = "signature"
VIAS = ("cli", "web", "hub")
KEY_ID_LEN = 16
MANUAL_KINDS = frozenset({
    "leave", "roster", "face_enroll", "face_revoke", "print_job", "case_closed", "complaint_add",
    "complaint_close", "rating_appeal", "appeal_decision", "personal_view", "user_add", "user_disable",
    "token_issue", "token_revoke",
})
HUB_KINDS = frozenset({
    "seq_reset", "seq_gap", "device_state", "clock_drift", "finding", "daily_close", "monthly_report",
    "snapshot_purge", "feed_sent", "feed_refused",
})


def key_id(public_hex: str) -> str:
    """The short id an entry's signature names its key by: the first 16 hex of its SHA-256."""
    return hashlib.sha256(bytes.fromhex(public_hex)).hexdigest()[:KEY_ID_LEN]


def signed_part(data: Mapping[str, Any]) -> bytes:
    """What an operator signs: the entry's data without its signature, in canonical form."""
    return canonical({k: v for k, v in data.items() if k != SIGNATURE})


def sign_data(key: PrivateKey, data: Mapping[str, Any]) -> dict[str, str]:
    """The `signature` object of `data` (which holds its `author` already)."""
    return {"key": key_id(public_hex_of(key)), "sig": key.sign(signed_part(data)).signature.hex()}


@dataclass(frozen=True)
class Operator:
    name: str
    key: PublicKey


def operators_of(roster: Mapping[str, Any]) -> dict[str, Operator]:
    """key id -> operator, from a roster entry's `operators` (none listed: no key in force).
    Raises ValueError for a list that is not [{name, public_key}]."""
    listed = roster.get("operators") or []
    if not isinstance(listed, list):
        raise ValueError("operators is not a list")
    found: dict[str, Operator] = {}
    for item in listed:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) \
                or not HEX64_RE.match(str(item.get("public_key"))):
            raise ValueError(f"operator {item!r} is not {{name, public_key}}")
        found[key_id(item["public_key"])] = Operator(item["name"], load_public_key(item["public_key"]))
    return found


@dataclass
class ProvenanceSummary:
    """What the provenance of the entries checked came to."""

    manual: int = 0  # entries of people (MANUAL_KINDS not authored by the hub)
    signed: Counter[str] = field(default_factory=Counter)  # operator name -> valid signatures
    unknown_key: int = 0  # signed with a key not in force (not checkable)
    unsigned: int = 0  # manual entries without a signature (those without author included)
    no_author: int = 0  # manual entries naming no author (written before authors were recorded)
    withheld: int = 0  # manual entries whose content a bundle withholds (personal data)
    hub: int = 0  # entries the hub wrote itself (derived kinds, the first roster)
    invalid: int = 0  # signatures that do not verify (a problem: the check fails on the first)

    def line(self) -> str:
        """One line, zh-CN first: `N manual entries: K signed by operators (names), U unsigned, 0 invalid`."""
        names = ", ".join(f"{name} {n}" for name, n in sorted(self.signed.items())) or "无 none"
        text = (f"人工条目 {self.manual} manual entries: {sum(self.signed.values())} 经操作员签名 signed "
                f"by operators ({names}), {self.unsigned} 未签名 unsigned")
        if self.no_author:
            text += f" ({self.no_author} 未记作者 naming no author)"
        if self.unknown_key:
            text += f", {self.unknown_key} 未知密钥 signed with a key not in force (not checked)"
        if self.withheld:
            text += f", {self.withheld} 内容隐去 withheld (not checked)"
        return text + f", {self.invalid} 签名无效 invalid; 中心自记 hub-derived entries: {self.hub}"


class ProvenanceCheck:
    """Entries in log order: each manual entry's author and signature, against the operator keys in
    force. `notice` returns the problem of an entry (a signature that does not verify, a malformed
    author), or None."""

    def __init__(self, roster: Mapping[str, Any] | None = None) -> None:
        self.operators: dict[str, Operator] = {}
        if roster is not None:
            try:
                self.operators = operators_of(roster)
            except ValueError:
                self.operators = {}
        self.summary = ProvenanceSummary()

    def notice(self, kind: str, data: Mapping[str, Any] | None) -> str | None:
        """`data` None: the content is withheld (a bundle's personal entries)."""
        if kind in HUB_KINDS:
            self.summary.hub += 1
            return None
        if kind not in MANUAL_KINDS:
            return None
        if data is None:
            self.summary.manual += 1
            self.summary.withheld += 1
            return None
        problem = self._manual(kind, data)
        if problem is None and kind == "roster":
            try:
                self.operators = operators_of(data)
            except ValueError as exc:
                return f"名册的操作员无效 the roster's operators: {exc}"
        return problem

    def _manual(self, kind: str, data: Mapping[str, Any]) -> str | None:
        author, signature = data.get(AUTHOR), data.get(SIGNATURE)
        if author is None:
            if signature is not None:
                return "签名无作者 a signature on an entry naming no author"
            self.summary.manual += 1
            self.summary.unsigned += 1
            self.summary.no_author += 1
            return None
        if not isinstance(author, dict) or not str(author.get("by") or "").strip() \
                or author.get("via") not in VIAS:
            return f"作者无效 the author {author!r} is not {{by, os_user, host, via: cli|web|hub}}"
        if author["via"] == "hub":
            if kind != "roster" or signature is not None:
                return f"中心不能代人记录 a {kind} entry is a person's action: the hub cannot author it"
            self.summary.hub += 1
            return None
        self.summary.manual += 1
        if signature is None:
            self.summary.unsigned += 1
            return None
        return self._signature(data, str(author["by"]), signature)

    def _signature(self, data: Mapping[str, Any], by: str, signature: Any) -> str | None:
        if not isinstance(signature, dict) or not SIG_RE.match(str(signature.get("sig"))):
            self.summary.invalid += 1
            return f"签名格式无效 the signature {signature!r} is not {{key, sig}}"
        operator = self.operators.get(str(signature.get("key")))
        if operator is None:
            self.summary.unknown_key += 1
            return None
        try:
            operator.key.verify(signed_part(data), bytes.fromhex(str(signature["sig"])))
        except BadSignatureError:
            self.summary.invalid += 1
            return (f"操作员签名无效 the signature of operator {operator.name} (key {signature['key']}) "
                    "does not verify: the entry was altered after it was signed")
        if operator.name != by:
            self.summary.invalid += 1
            return (f"签名人与作者不符 signed with the key of operator {operator.name}, but the entry "
                    f"names {by!r} as its author")
        self.summary.signed[operator.name] += 1
        return None
