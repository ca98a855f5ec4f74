"""The wire contract (PROTOCOL.md section 1): canonical form, signatures, envelope shape, topics."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire import topics
from wire.bodies import validate_body
from wire.envelope import (
    WireError,
    canonical,
    generate_keypair,
    load_private_key,
    load_public_key,
    parse,
    seal,
    uuid7,
    verify,
)

# RFC 8032 test 1: an Ed25519 key pair with a known public key.
RFC8032_PRIVATE = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
RFC8032_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
TS = "2026-11-24T08:29:31.120+08:00"


def sealed(**overrides: object):
    fields = {"hall": "h1", "device": "entrance", "seq": 42, "ts": TS, "type": "clock",
              "body": {"method": "card", "card": "0A004A7B2C"},
              "id": "0193a5c2-7d4e-7c1a-9f3b-5e2d8a4c6b10"}
    fields.update(overrides)
    return seal(load_private_key(RFC8032_PRIVATE), **fields)  # type: ignore[arg-type]


def test_canonical_form_is_sorted_compact_utf8() -> None:
    assert canonical({"b": 1, "a": {"名": "张伟", "z": [1, 2]}}) == (
        '{"a":{"z":[1,2],"名":"张伟"},"b":1}'.encode()
    )


def test_public_key_of_rfc8032_vector() -> None:
    key = load_private_key(RFC8032_PRIVATE)
    from wire.envelope import public_hex_of

    assert public_hex_of(key) == RFC8032_PUBLIC


def test_signature_covers_canonical_form_without_sig() -> None:
    envelope = sealed()
    obj = json.loads(envelope.raw)
    assert set(obj) == {"v", "id", "hall", "device", "seq", "ts", "type", "body", "sig"}
    assert len(obj["sig"]) == 128 and obj["sig"] == obj["sig"].lower()
    unsigned = {k: v for k, v in obj.items() if k != "sig"}
    load_public_key(RFC8032_PUBLIC).verify(canonical(unsigned), bytes.fromhex(obj["sig"]))
    assert envelope.raw == canonical(obj)  # published bytes are canonical too
    assert parse(envelope.raw) == envelope


def test_ed25519_signatures_are_deterministic() -> None:
    assert sealed().sig == sealed().sig
    assert sealed().sig != sealed(seq=43).sig


@pytest.mark.parametrize("mutate", [
    lambda o: o["body"].update(card="67003B51C6"),
    lambda o: o.update(seq=43),
    lambda o: o.update(ts="2026-11-24T08:29:31.121+08:00"),
    lambda o: o.update(device="entrance2"),
])
def test_any_change_breaks_the_signature(mutate) -> None:
    obj = json.loads(sealed().raw)
    mutate(obj)
    with pytest.raises(WireError) as caught:
        verify(parse(canonical(obj)), load_public_key(RFC8032_PUBLIC))
    assert caught.value.reason == "bad_signature"


def test_wrong_key_is_a_bad_signature() -> None:
    other = load_public_key(generate_keypair().public_hex)
    with pytest.raises(WireError, match="bad_signature"):
        verify(sealed(), other)


@pytest.mark.parametrize("raw, why", [
    (b"\xff\xfe", "UTF-8"),
    (b"[1,2]", "not a JSON object"),
    (b"{nope", "not JSON"),
    (b'{"v":1}', "envelope keys"),
])
def test_malformed_envelopes(raw: bytes, why: str) -> None:
    with pytest.raises(WireError, match=why) as caught:
        parse(raw)
    assert caught.value.reason == "malformed"


@pytest.mark.parametrize("field, value", [
    ("seq", 0), ("seq", "1"), ("seq", True), ("id", "x" * 65), ("hall", "H1"), ("ts", "2026-11-24 08:00"),
    ("ts", "2026-11-24T08:29:31+08:00"), ("sig", "AB" * 64), ("v", 2),
])
def test_bad_envelope_fields(field: str, value: object) -> None:
    obj = json.loads(sealed().raw)
    obj[field] = value
    with pytest.raises(WireError) as caught:
        parse(canonical(obj))
    assert caught.value.reason == "malformed"


def test_floats_are_refused_on_both_sides() -> None:
    with pytest.raises(ValueError, match="floating-point"):
        sealed(body={"method": "face", "distance_milli": 0.4})
    obj = json.loads(sealed().raw)
    text = canonical(obj).replace(b'"seq":42', b'"seq":42.0')
    with pytest.raises(WireError, match="floating-point"):
        parse(text)


@pytest.mark.parametrize("type_, body, ok", [
    ("clock", {"method": "card", "card": "0A004A7B2C"}, True),
    ("clock", {"method": "card", "card": "0a004a7b2c"}, False),
    ("clock", {"method": "palm"}, False),
    ("clock", {"method": "face", "staff": "S001", "distance_milli": 412, "live": True}, True),
    ("fault", {"unit": "door", "code": "bad_frame", "count": 3, "detail": "3 bad frame(s)"}, True),
    ("fault", {"unit": "door", "code": "bad_frame", "count": "3", "detail": ""}, False),
    ("ack", {"cmd": "abc", "ok": True, "error": None}, True),
    ("rating", {"window": "03", "level": 6, "keys": 5, "invited": False, "invite": None,
                "ticket": None}, False),
    ("sign", {"window": "03", "desk": "d3", "state": "away", "reason": "meeting",
              "back_at": "2026-11-24T10:30:00.000+08:00"}, True),
    ("clock", {"method": "card", "card": "0A004A7B2C", "extra": 1}, False),
    ("selfie", {}, False),
])
def test_body_schemas(type_: str, body: dict, ok: bool) -> None:
    if ok:
        validate_body(type_, body)
    else:
        with pytest.raises(WireError) as caught:
            validate_body(type_, body)
        assert caught.value.reason == "malformed"


def test_uuid7_shape_and_order() -> None:
    ids = [uuid7() for _ in range(50)]
    assert all(len(i) == 36 and i[14] == "7" and i[19] in "89ab" for i in ids)
    assert len(set(ids)) == 50


@pytest.mark.parametrize("topic, expected", [
    ("hall/v1/h1/entrance/evt/clock", ("h1", "entrance", "evt", "clock")),
    ("hall/v1/h1/entrance/state", ("h1", "entrance", "state", None)),
    ("hall/v1/h1/entrance/cmd/sync", ("h1", "entrance", "cmd", "sync")),
    ("hall/v1/h1/entrance/committed", ("h1", "entrance", "committed", None)),
    ("hall/v1/h1/entrance/evt/clock/extra", None),
    ("hall/v1/H1/entrance/evt/clock", None),
    ("other/h1/entrance/state", None),
])
def test_topic_split(topic: str, expected: tuple | None) -> None:
    parts = topics.split("hall/v1", topic)
    assert (None if parts is None else (parts.hall, parts.device, parts.kind, parts.name)) == expected
    if expected and expected[2] == "evt":
        assert topics.event("hall/v1", *expected[:2], expected[3]) == topic


# --- the audit entry's hash, made around canonical bytes already serialised --------------------

_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), st.text(max_size=20))
_json = st.recursive(_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                    st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                     max_leaves=12)


@given(seq=st.integers(1, 2**53 - 1), at=st.text(max_size=30), kind=st.text(max_size=12),
       ref=st.one_of(st.none(), st.text(max_size=64)),
       data=st.dictionaries(st.text(max_size=8), _json, max_size=5),
       prev=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))
def test_entry_hash_of_text_is_entry_hash(seq: int, at: str, kind: str, ref: str | None,
                                         data: dict[str, object], prev: str) -> None:
    from wire.record import entry_hash, entry_hash_of_text
    expected = entry_hash(seq, at, kind, ref, data, prev)
    assert entry_hash_of_text(seq, at, kind, ref, canonical(data), prev) == expected


def test_verify_takes_the_raw_bytes_less_their_sig_only_as_parsed() -> None:
    key = load_private_key(bytes(range(1, 33)).hex())
    sealed = seal(key, hall="h1", device="entrance", seq=1, ts="2026-11-24T08:00:00.000+08:00",
                  type="clock", body={"sig": "x", "method": "card", "card": "0A004A7B2C"})
    verify(parse(sealed.raw), key.verify_key)  # a body key named sig changes nothing
    forged = json.loads(sealed.raw)
    forged["body"]["card"] = "0A004A7B2D"
    with pytest.raises(WireError, match="bad_signature"):
        verify(parse(canonical(forged)), key.verify_key)


# --- the event row's body, cut from the signed bytes instead of serialised again ---------------

_ROW_KEY = load_private_key(generate_keypair().private_hex)


_BODY_KEYS = st.sampled_from(["device", "body", "ts", "sig", "x", 'a","device":"']) | st.text(max_size=8)


@given(body=st.dictionaries(_BODY_KEYS, _json | st.dictionaries(_BODY_KEYS, _json, max_size=3), max_size=5),
       id_=st.text(st.characters(min_codepoint=32), min_size=1, max_size=64),
       epoch=st.sampled_from([None, "0123456789abcdef"]))
def test_the_body_cut_from_the_signed_bytes_is_its_canonical_form(body: dict[str, object], id_: str,
                                                                  epoch: str | None) -> None:
    from hub.domain import StoredEvent
    from hub.store.rows import event_row
    raw = seal(_ROW_KEY, hall="h1", device="entrance", seq=1, ts="2026-11-24T08:00:00.000+08:00",
               type="clock", body=body, epoch=epoch, id=id_).raw
    moment = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    event = StoredEvent(id_, "h1", "entrance", 1, "clock", moment, moment, body, raw, epoch)
    assert event_row(event, "2026-11-24T08:00:00.000+08:00")["body"] == canonical(body).decode("utf-8")
