"""Untrusted input: whatever anyone who reaches the broker publishes, the hub's decoder and the edge
agent's handlers never raise. Every message becomes a StoredEvent or a Quarantined with a known
reason (hub), or is counted by reason (edge). Property tests over arbitrary and mutated messages
(some re-signed with the right key, so the signature holds and only the fields are wrong), then one
table row per case."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent import config as edge_config
from edge_agent.agent import EdgeAgent
from edge_agent.link import Inbound
from edge_agent.readings import CardRead
from hub import config as hub_config
from hub.audit import verify_log
from hub.commands import HubSequence
from hub.domain import Quarantined, StoredEvent
from hub.ingest import Decoder
from hub.service import HubService, RejectCollapser
from hub.store.store import Store
from tests.hall_harness import hub_in_thread, wait_for
from tests.mqtt_broker import Mosquitto, publish
from wire.bodies import validate_body
from wire.clock import FixedClock, SystemClock
from wire.envelope import (
    WireError,
    canonical,
    format_ts,
    generate_keypair,
    load_private_key,
    load_public_key,
    parse,
    seal,
)

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 24, 8, 30, tzinfo=TZ)
TS = "2026-11-24T08:29:31.120+08:00"
DEVICE, HUB = generate_keypair(), generate_keypair()
TOPIC = "hall/v1/h1/entrance/evt/clock"
REASONS = {"oversize", "malformed", "non_canonical", "unknown_device", "bad_signature",
           "topic_mismatch", "future_ts"}
PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# --- building messages ----------------------------------------------------------------------


def unsigned(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"v": 1, "id": "0193a5c2-7d4e-7c1a-9f3b-5e2d8a4c6b10", "hall": "h1",
                              "device": "entrance", "seq": 42, "ts": TS, "type": "clock",
                              "body": {"method": "card", "card": "0A004A7B2C"}}
    fields.update(overrides)
    return fields


def signed(fields: dict[str, Any], key_hex: str = DEVICE.private_hex) -> bytes:
    """Canonical bytes with a signature that holds, whatever the fields hold."""
    sig = load_private_key(key_hex).sign(canonical(fields)).signature.hex()
    return canonical({**fields, "sig": sig})


HUB_SEQ = HubSequence()  # as the hub numbers what it signs: each message above the last (PROTOCOL.md 2.6)


def hub_signed(device: str, type_: str, body: dict[str, Any], **overrides: Any) -> bytes:
    fields = unsigned(device=device, type=type_, body=body, ts=format_ts(datetime.now(TZ)),
                      id=f"cmd-{time.monotonic_ns()}", seq=HUB_SEQ.next())
    fields.update(overrides)
    return signed(fields, HUB.private_hex)


GOOD = signed(unsigned())
SURROGATE = signed(unsigned(body={"method": "card", "staff": "SURR"})).replace(b'"SURR"', b'"\\ud800"')
CHINESE = signed(unsigned(body={"method": "face", "staff": "张伟"}))
DUPLICATE = GOOD.replace(b'"seq":42,', b'"seq":42,"seq":42,')
DEEP = signed(unsigned(body={"method": "card", "staff": "X"})).replace(b'"X"', b"[" * 40 + b"]" * 40)
json_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10)
tricky = st.sampled_from([
    "2026-02-30T08:00:00.000+08:00", 2**53, "2026-11-24T25:00:00.000+08:00", "a\x00b", "h1\n",
    "9999-12-31T23:59:59.999-23:59", "0001-01-01T00:00:00.000+23:59", "2026-11-24T08:00:00.000+24:00",
    "２０２６-11-24T08:00:00.000Z", 0, -1, 2**53 - 1, -(2**53), True, None, "", "x" * 65, [], {},
])


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any], key_hex: str) -> bytes:
    """A valid envelope with fields replaced, removed or added, re-signed with the right key."""
    fields = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from([*fields, "body", "body", "extra"]))
        value = draw(st.one_of(tricky, tricky, json_values))
        if where == "body" and isinstance(fields["body"], dict):
            fields["body"][draw(st.sampled_from([*fields["body"], "staff", "back_at", "seq"]))] = value
        elif draw(st.booleans()) and where in fields:
            del fields[where]
        else:
            fields[where] = value
    try:
        return signed(fields, key_hex)
    except ValueError:  # an integer json cannot write: keep the envelope as it was
        return signed(base, key_hex)


@st.composite
def one_tricky(draw: st.DrawFn, base: dict[str, Any], key_hex: str) -> bytes:
    """A valid envelope with one field set to a value near the edge of the contract, re-signed."""
    field = draw(st.sampled_from(["id", "hall", "device", "seq", "ts", "type"]))
    return signed({**base, field: draw(tricky)}, key_hex)


HOSTILE_TOKENS = [
    b'"\\ud800"', b'"x\\udfff"', b"NaN", b"-Infinity", b"1e999", b"1.5", b"9" * 5000, b"-" + b"9" * 20,
    b"9007199254740993", b"[" * 3000 + b"]" * 3000, b"[" * 40 + b"]" * 40, b'{"k":1,"k":2}', b"null",
    b"true", b"[]", b'"2026-02-30T08:00:00.000+08:00"', b'"2026-11-24T08:00:00.000+08:00\\n"',
]


@st.composite
def spliced(draw: st.DrawFn, raw: bytes) -> bytes:
    """A string or number of a valid message (a key, a value, the signature) replaced by a hostile
    token; the signature no longer holds."""
    start, end = draw(st.sampled_from([m.span() for m in re.finditer(rb'"[^"]*"|-?[0-9]+', raw)]))
    return raw[:start] + draw(st.sampled_from(HOSTILE_TOKENS)) + raw[end:]


@st.composite
def flipped(draw: st.DrawFn, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


# --- the hub's decoder ----------------------------------------------------------------------


def decoder() -> Decoder:
    return Decoder("h1", "hall/v1", {"entrance": load_public_key(DEVICE.public_hex)}, 4096)


def decoded(topic: str, payload: bytes) -> StoredEvent | Quarantined:
    """The decoder's answer, checked: a known reason, or an event that holds to the contract."""
    result = decoder().decode(topic, payload, NOW)
    assert isinstance(result, StoredEvent | Quarantined)
    if isinstance(result, Quarantined):
        assert result.reason in REASONS, result
    else:
        assert parse(result.raw).raw == result.raw and result.ts - NOW <= timedelta(days=1)
        assert portable(json.loads(result.raw)), result.raw
    return result


def portable(value: object) -> bool:
    if isinstance(value, dict):
        return all(portable(item) for item in value.values())
    if isinstance(value, list):
        return all(portable(item) for item in value)
    return not isinstance(value, int) or abs(value) < 2**53


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    opened = Store(f"sqlite:///{tmp_path_factory.mktemp('hub') / 'hub.db'}", SystemClock(TZ))
    yield opened
    opened.close()


evt_topics = st.sampled_from([TOPIC, TOPIC, TOPIC, "hall/v1/h1/entrance/evt/sign", "hall/v1/h1/x/evt/clock",
                              "hall/v1/h1/entrance/evt/clock/x", "junk"])


@PROPERTY
@given(topic=evt_topics, payload=st.binary(max_size=600))
def test_decoder_takes_arbitrary_bytes(topic: str, payload: bytes) -> None:
    decoded(topic, payload)


@PROPERTY
@given(payload=flipped(GOOD) | spliced(GOOD) | spliced(CHINESE))
def test_decoder_takes_flipped_and_spliced_bytes(payload: bytes) -> None:
    result = decoded(TOPIC, payload)
    assert isinstance(result, Quarantined) or result.raw in (GOOD, CHINESE)


@PROPERTY
@given(topic=evt_topics, payload=one_tricky(unsigned(), DEVICE.private_hex)
       | mutated(unsigned(), DEVICE.private_hex) | mutated(
    unsigned(type="sign", body={"window": "03", "desk": "d3", "state": "away", "reason": "meeting",
                                "back_at": TS}), DEVICE.private_hex))
def test_decoder_takes_re_signed_mutations_and_the_store_keeps_them(store: Store, topic: str,
                                                                    payload: bytes) -> None:
    result = decoded(topic, payload)
    assert store.ingest([result])[0] in ("stored", "duplicate", "tamper", "quarantined")


# --- the edge agent's handlers -------------------------------------------------------------


def make_agent(folder: Path) -> EdgeAgent:
    path = folder / "edge.toml"
    path.write_text(
        f'hall = "h1"\ndevice = "entrance"\nprivate_key = "{DEVICE.private_hex}"\n'
        f'hub_public_key = "{HUB.public_hex}"\n[outbox]\npath = "outbox.db"\n'
        '[[units]]\nid = "door"\nkind = "card"\ndriver = "rdm6300"\nport = "/dev/hall-card"\n'
        '[[units]]\nid = "eval"\nkind = "evaluator"\ndriver = "buttonbus"\nport = "/dev/hall-eval"\n'
        'window = "03"\n', encoding="utf-8")
    return EdgeAgent(edge_config.load(path), FixedClock(NOW))


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeAgent]:
    made = make_agent(tmp_path_factory.mktemp("edge"))
    yield made
    made.outbox.close()


@pytest.fixture
def fresh_agent(tmp_path: Path) -> Iterator[EdgeAgent]:
    """An agent no mutated message reached: the hub seqs it accepted are its own test's."""
    made = make_agent(tmp_path)
    yield made
    made.outbox.close()


EDGE_TOPICS = ["hall/v1/h1/roster", "hall/v1/h1/entrance/committed", "hall/v1/h1/entrance/cmd/show",
               "hall/v1/h1/entrance/cmd/invite", "hall/v1/h1/entrance/cmd/sync",
               "hall/v1/h1/entrance/cmd/print", "hall/v1/h1/other/committed", "hall/v1/h2/roster"]
hub_bodies = st.sampled_from([
    ("hub", "roster", {"staff": [{"id": "S1", "name": "张", "window": "03", "cards": ["0A004A7B2C"]}],
                       "windows": ["03"], "gallery": []}),
    ("entrance", "committed", {"seq": 3}),
    ("entrance", "show", {"window": "03", "mode": 1, "text": "请评价"}),
    ("entrance", "invite", {"window": "03", "seconds": 30, "ticket": "A1"}),
    ("entrance", "sync", {}),
])


@st.composite
def hub_messages(draw: st.DrawFn) -> bytes:
    device, type_, body = draw(hub_bodies)
    base = unsigned(device=device, type=type_, body=body, id=f"c{draw(st.integers(0, 10**9))}")
    payload = draw(mutated(base, HUB.private_hex))
    return draw(st.one_of(st.just(payload), flipped(payload), spliced(signed(base, HUB.private_hex)),
                          spliced(signed(base, HUB.private_hex))))


def assert_survives(agent: EdgeAgent, topic: str, payload: bytes, retained: bool = False) -> None:
    agent.hub.handle(Inbound(topic, payload, retained))
    assert agent.hub.rejected["error"] == 0, "an unexpected exception reached the last line of defence"


@PROPERTY
@given(topic=st.sampled_from(EDGE_TOPICS) | st.text(max_size=30), payload=st.binary(max_size=600),
       retained=st.booleans())
def test_edge_takes_arbitrary_bytes(agent: EdgeAgent, topic: str, payload: bytes, retained: bool) -> None:
    assert_survives(agent, topic, payload, retained)


@PROPERTY
@given(topic=st.sampled_from(EDGE_TOPICS), payload=hub_messages(), retained=st.booleans())
def test_edge_takes_hub_signed_mutations(agent: EdgeAgent, topic: str, payload: bytes,
                                         retained: bool) -> None:
    assert_survives(agent, topic, payload, retained)


# --- one row per case ----------------------------------------------------------------------

DIGITS = GOOD.replace(b'"seq":42', b'"seq":' + b"7" * 5000)


@pytest.mark.parametrize("raw, reason", [
    (b"[" * 100_000, "malformed"),  # RecursionError inside json
    (DEEP, "malformed"),  # 41 levels: under Python's limit, over the contract's
    (DIGITS, "malformed"),  # ValueError (4300-digit limit) inside json
    (signed(unsigned(seq=2**53)), "malformed"),
    (signed(unsigned(body={"method": "card", "distance_milli": 2**60})), "malformed"),
    (signed(unsigned(body={"method": "card", "distance_milli": -(2**53)})), "malformed"),
    (SURROGATE, "malformed"),
    (DUPLICATE, "malformed"),
    (GOOD.replace(b'"card":"0A004A7B2C"', b'"card":"0A004A7B2C","x":NaN'), "malformed"),
    (GOOD.replace(b'"card":"0A004A7B2C"', b'"card":"0A004A7B2C","x":-Infinity'), "malformed"),
    (b"9" * 5000, "malformed"),  # not an object either (`[1,2]` is in test_wire.py)
    (json.dumps(json.loads(GOOD)).encode(), "non_canonical"),  # spaces after separators
    (json.dumps(json.loads(CHINESE), sort_keys=True, separators=(",", ":")).encode(),
     "non_canonical"),  # \u escapes instead of UTF-8
    (json.dumps(dict(reversed(json.loads(GOOD).items())), separators=(",", ":")).encode(),
     "non_canonical"),  # keys not sorted
    (b" " + GOOD, "non_canonical"),
    (signed(unsigned(ts="2026-02-30T08:00:00.000+08:00")), "malformed"),
    (signed(unsigned(ts="2026-11-24T25:00:00.000+08:00")), "malformed"),
    (signed(unsigned(ts="2026-11-24T08:00:00.000+24:00")), "malformed"),
    (signed(unsigned(ts="0001-01-01T00:00:00.000+23:59")), "malformed"),  # before year 1 in UTC
    (signed(unsigned(ts="٢٠٢٦-11-24T08:00:00.000+08:00")), "malformed"),  # non-ASCII digits
])
def test_parse_refuses(raw: bytes, reason: str) -> None:
    with pytest.raises(WireError) as caught:
        parse(raw)
    assert caught.value.reason == reason


@pytest.mark.parametrize("field, value", [  # wrong types were refused before: see test_wire.py
    ("id", "a\x00b"), ("id", "a\nb"), ("hall", "h1\n"), ("device", "entrance\n"), ("seq", 2**53),
    ("seq", 2**63), ("ts", TS + "\n"), ("ts", "２０２６-11-24T08:29:31.120+08:00"), ("type", "clock\n"),
    ("sig", "ab" * 64 + "\n"),
])
def test_every_field_with_a_value_just_outside_the_contract(field: str, value: object) -> None:
    fields = {**unsigned(), "sig": "ab" * 64}  # parse checks the shape, not the signature
    fields[field] = value
    with pytest.raises(WireError) as caught:
        parse(canonical(fields))
    assert caught.value.reason == "malformed"


def test_canonical_bytes_are_what_seal_publishes() -> None:
    envelope = seal(load_private_key(DEVICE.private_hex), hall="h1", device="entrance", seq=1, ts=TS,
                    type="clock", body={"method": "face", "staff": "张伟", "live": True})
    assert parse(envelope.raw) == envelope


def test_back_at_must_be_a_real_moment() -> None:
    body = {"window": "03", "desk": "d3", "state": "away", "reason": "meeting"}
    validate_body("sign", {**body, "back_at": "2026-11-24T10:30:00.000+08:00"})
    for bad in ("2026-02-30T10:30:00.000+08:00", "2026-11-24T24:00:00.000+08:00"):
        with pytest.raises(WireError, match="back_at"):
            validate_body("sign", {**body, "back_at": bad})


@pytest.mark.parametrize("fields, reason", [
    (unsigned(ts=format_ts(NOW + timedelta(days=1, minutes=1))), "future_ts"),
    (unsigned(ts="9999-12-31T23:59:59.999+08:00"), "future_ts"),
    (unsigned(ts="9999-12-31T23:59:59.999-23:59"), "malformed"),  # after year 9999 in UTC
    (unsigned(seq=2**53), "malformed"),
    (unsigned(type="sign", body={"window": "03", "desk": "d3", "state": "away", "reason": "break",
                                 "back_at": "2026-02-30T10:30:00.000+08:00"}), "malformed"),
    (unsigned(body={"method": "face", "staff": "S1", "distance_milli": 2**60}), "malformed"),
])
def test_signed_events_with_bad_fields_are_quarantined_every_time(store: Store, fields: dict[str, Any],
                                                                  reason: str) -> None:
    topic = f"hall/v1/h1/entrance/evt/{fields['type']}"
    for _ in range(2):  # the edge resends what was not committed: the same answer, no exception
        result = decoder().decode(topic, signed(fields), NOW)
        assert isinstance(result, Quarantined) and result.reason == reason, result
        assert store.ingest([result]) == ["quarantined"]


def test_a_day_ahead_is_still_accepted() -> None:
    assert isinstance(decoded(TOPIC, signed(unsigned(ts=format_ts(NOW + timedelta(hours=23))))),
                      StoredEvent)


def test_quarantine_keeps_4_kib_with_size_and_sha256(tmp_path: Path) -> None:
    opened = Store(f"sqlite:///{tmp_path / 'hub.db'}", FixedClock(NOW))
    payload = bytes(range(256)) * 400  # 100 KiB
    assert opened.ingest([Quarantined(NOW, TOPIC, "oversize", "big", payload)]) == ["quarantined"]
    assert opened.quarantined()[0].payload == payload[:4096]
    entry = opened.last_audit("quarantine")
    assert entry is not None and entry.data["size"] == len(payload)
    assert entry.data["sha256"] == hashlib.sha256(payload).hexdigest()
    opened.close()


CARD_ROSTER = {"staff": [{"id": "S1", "name": "张伟", "window": "03", "cards": ["0A004A7B2C"]}],
               "windows": ["03"], "gallery": []}


@pytest.mark.parametrize("topic, payload, reason", [
    ("hall/v1/h1/entrance/cmd/show", b"[" * 100_000, "malformed"),
    ("hall/v1/h1/entrance/committed", DIGITS, "malformed"),
    ("hall/v1/h1/roster", b'{"v":1' + b"0" * 5000 + b"}", "malformed"),
    ("hall/v1/h1/entrance/cmd/show", SURROGATE.replace(b'"type":"clock"', b'"type":"show"'), "malformed"),
    ("hall/v1/h1/entrance/cmd/show", b"x" * (8 * 1024 * 1024 + 1), "oversize"),
    ("hall/v1/h1/entrance/committed", GOOD, "bad_signature"),
    ("hall/v1/h1/entrance/committed", hub_signed("entrance", "show", {"seq": 1}), "topic_mismatch"),
    ("hall/v1/h1/roster", hub_signed("hub", "roster", {"staff": {"S1": {"cards": []}}}), "malformed"),
    ("hall/v1/h1/roster", hub_signed("hub", "roster", {"staff": ["S1"]}), "malformed"),
    ("hall/v1/h1/roster", hub_signed("hub", "roster", {"gallery": [{"staff": "S1", "encoding": [1]}]}),
     "malformed"),
    ("hall/v1/h1/entrance/committed", hub_signed("entrance", "committed", {"seq": "9"}), "malformed"),
])
def test_edge_refuses_and_counts(agent: EdgeAgent, topic: str, payload: bytes, reason: str) -> None:
    agent.hub.handle(Inbound("hall/v1/h1/roster", hub_signed("hub", "roster", CARD_ROSTER), True))
    before = agent.hub.rejected[reason]
    assert_survives(agent, topic, payload, retained=True)
    assert agent.hub.rejected[reason] == before + 1
    agent.record(CardRead("door", "0A004A7B2C", NOW))  # the last good roster still names the owner


@pytest.mark.parametrize("body", [
    {"window": "03", "mode": True, "text": "x"}, {"window": 3, "mode": 1}, {"mode": 1},
    {"window": "99", "mode": 1}, {"window": "03", "mode": 1, "display": ["desk"]},
])
def test_a_hub_signed_command_with_a_bad_body_is_answered_not_raised(fresh_agent: EdgeAgent,
                                                                      body: dict[str, Any]) -> None:
    before, last = fresh_agent.hub.rejected["bad_command"], fresh_agent.outbox.last_seq()
    assert_survives(fresh_agent, "hall/v1/h1/entrance/cmd/show", hub_signed("entrance", "show", body))
    assert fresh_agent.hub.rejected["bad_command"] == before + 1
    assert fresh_agent.outbox.last_seq() == last + 1  # the ack, ok=false


# --- the hub service: state messages, repeats, the loop -------------------------------------


def test_collapser_stores_the_first_of_a_minute_and_counts_the_rest() -> None:
    collapser = RejectCollapser(window_s=60, max_windows=2)
    items = [Quarantined(NOW + timedelta(seconds=n), f"t{n % 3}", "malformed", "x", b"ab") for n in range(9)]
    admitted = [collapser.admit(item, now=100.0 + n) for n, item in enumerate(items)]
    assert admitted == [True, True, True] + [False] * 6  # t2 opened the shared "*" window
    assert collapser.close(now=150.0) == []
    entries = sorted(collapser.close(now=200.0), key=lambda e: e["topic"])
    assert [(e["topic"], e["repeats"], e["bytes"]) for e in entries] == [("*", 2, 4), ("t0", 2, 4),
                                                                         ("t1", 2, 4)]
    assert entries[0]["first_at"] == format_ts(items[5].received_at)
    assert collapser.admit(items[0], now=201.0) is True  # a new window


def test_hub_survives_poisoned_state_and_collapses_repeats(tmp_path: Path, broker: Mosquitto) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(
        f'hall = "h1"\nprivate_key = "{HUB.private_hex}"\n[broker]\nurl = "{broker.url}"\n'
        f'[store]\nurl = "sqlite:///hub.db"\n'
        f'[[devices]]\nid = "entrance"\npublic_key = "{DEVICE.public_hex}"\n',
        encoding="utf-8")
    config = hub_config.load(path)
    clock = SystemClock(TZ)
    store = Store(config.store.url, clock)
    tick = [1000.0]
    service = HubService(config, clock, store, monotonic=lambda: tick[0])
    try:
        with hub_in_thread(service) as thread:
            state = "hall/v1/h1/entrance/state"
            good = signed(unsigned(ts=format_ts(clock.now()), seq=1))
            publish(broker.port, [(state, b"[" * 100_000, True), (state, b"[1]", False),
                                   (state, b'{"online": true, "ts": "2026-02-30T08:00:00.000+08:00"}', False),
                                   (state, b"\xff", False)]
                     + [(TOPIC, b"junk", False)] * 5 + [(TOPIC, good, False)])
            wait_for(lambda: store.event_count() == 1, 20, "the good event stored")
            assert [q.reason for q in store.quarantined()] == ["malformed", "malformed"]  # state, junk
            tick[0] += 61
            wait_for(lambda: sum(e.data.get("repeats", 0) for e in store.audit(kind="quarantine")) == 7, 20,
                     "one entry per window with its repeats")
            entries = {e.data["topic"]: e.data["repeats"] for e in store.audit(kind="quarantine")
                       if "repeats" in e.data}
            assert entries == {state: 3, TOPIC: 4}
            assert thread.is_alive()
            assert verify_log(store, config.device_keys()).ok
    finally:
        store.close()
