"""Who may connect, publish and subscribe: logins and the topic ACL, on the embedded broker and on a
real Mosquitto run with the files `hall-hub broker export` writes; TLS with a hall CA."""

from __future__ import annotations

import re
import shutil
import ssl
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest

from edge_agent.config import BrokerConfig as EdgeBrokerConfig
from edge_agent.link import MqttLink
from hub import config as hub_config
from hub.broker import EmbeddedBroker
from hub.broker_access import (
    HUB_USER,
    AccessError,
    TopicAcl,
    add_user,
    covers,
    hash_secret,
    read_hub_secret,
    read_passwd,
    verify_secret,
)
from hub.cli_broker import add_device, export
from hub.config import HubConfig
from hub.service import HubService
from hub.store.store import Store
from tests.hall_harness import hub_in_thread
from tests.mqtt_broker import Mosquitto, free_port
from wire.clock import SystemClock
from wire.configfile import ConfigError
from wire.envelope import generate_keypair

ROOT = Path(__file__).resolve().parents[1]
P = "hall/v1/h1"  # prefix and hall of the test hall


def write_hub_config(directory: Path, port: int, broker_extra: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "hub.toml"
    devices = "".join(f'[[devices]]\nid = "{device}"\npublic_key = "{generate_keypair().public_hex}"\n\n'
                      for device in ("a", "b"))
    path.write_text(f'hall = "h1"\nprivate_key = "{generate_keypair().private_hex}"\n\n'
                    f'[broker]\nlisten = "127.0.0.1:{port}"\npasswd_file = "broker.passwd"\n{broker_extra}\n'
                    f'[store]\nurl = "sqlite:///hub.db"\n\n{devices}', encoding="utf-8")
    return path


# --- hashes, rules, files (no broker) ---------------------------------------------------------


def test_a_hash_verifies_its_secret_only() -> None:
    hashed = hash_secret("s3cret")
    assert re.fullmatch(r"\$7\$\d+\$[A-Za-z0-9+/=]{16}\$[A-Za-z0-9+/=]{88}", hashed)
    assert verify_secret("s3cret", hashed) and not verify_secret("s3cret ", hashed)
    assert not verify_secret("s3cret", "$7$x$y$z") and not verify_secret("s3cret", "plain")


@pytest.mark.skipif(not Path("/usr/bin/mosquitto_passwd").exists(), reason="mosquitto_passwd not installed")
def test_hashes_that_mosquitto_passwd_writes_verify(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("entrance:s3cret\nhub:s3cret\n", encoding="utf-8")
    subprocess.run(["/usr/bin/mosquitto_passwd", "-U", str(passwd)], check=True, timeout=30)
    users = read_passwd(passwd)
    assert users["entrance"].startswith("$7$") and users["entrance"] != "s3cret"
    assert verify_secret("s3cret", users["entrance"]) and not verify_secret("s3cret!", users["entrance"])
    assert verify_secret("s3cret", users["hub"]) and users["hub"] != users["entrance"]  # salted


ACL = TopicAcl("hall/v1", "h1", frozenset({"a", "b"}))


@pytest.mark.parametrize(("user", "topic", "allowed"), [
    ("a", f"{P}/a/evt/clock", True), ("a", f"{P}/a/state", True),
    ("a", f"{P}/b/evt/clock", False), ("a", f"{P}/b/state", False), ("a", f"{P}/a/cmd/show", False),
    ("a", f"{P}/a/committed", False), ("a", f"{P}/roster", False), ("a", "hall/v1/h2/a/evt/clock", False),
    ("hub", f"{P}/a/cmd/show", True), ("hub", f"{P}/roster", True), ("hub", "hall/v1/h2/roster", False),
    ("c", f"{P}/c/evt/clock", False), (None, f"{P}/a/evt/clock", False),
])
def test_who_may_publish_where(user: str | None, topic: str, allowed: bool) -> None:
    assert ACL.may_publish(user, topic) is allowed


@pytest.mark.parametrize(("user", "topic_filter", "allowed"), [
    ("a", f"{P}/a/cmd/+", True), ("a", f"{P}/a/cmd/#", True), ("a", f"{P}/a/committed", True),
    ("a", f"{P}/roster", True), ("a", f"{P}/#", False), ("a", f"{P}/+/cmd/#", False),
    ("a", f"{P}/b/cmd/+", False), ("a", f"{P}/a/#", False), ("a", "#", False), ("a", f"{P}/roster/#", False),
    ("hub", f"{P}/#", True), ("hub", f"{P}/+/evt/#", True), ("hub", "#", False), ("hub", "$SYS/#", False),
])
def test_who_may_subscribe_to_what(user: str, topic_filter: str, allowed: bool) -> None:
    assert ACL.may_subscribe(user, topic_filter) is allowed


def test_covers_is_about_every_topic_a_filter_matches() -> None:
    assert covers("x/+/z", "x/y/z") and covers("x/+/z", "x/+/z") and not covers("x/+/z", "x/#")
    assert covers("x/#", "x") and not covers("x", "x/#") and not covers("x/y", "x/+")


def test_add_user_keeps_hashes_only_and_makes_the_hub_user(tmp_path: Path) -> None:
    passwd = tmp_path / "etc" / "broker.passwd"
    login = add_user(passwd, "a")
    users = read_passwd(passwd)
    assert set(users) == {HUB_USER, "a"} and login.hub_created
    assert login.secret not in passwd.read_text() and verify_secret(login.secret, users["a"])
    hub_secret = read_hub_secret(passwd)
    assert hub_secret is not None and verify_secret(hub_secret, users[HUB_USER])
    for path in (passwd, passwd.with_name("broker.passwd.hub")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    with pytest.raises(AccessError, match="already has a broker password.*--rotate"):
        add_user(passwd, "a")
    rotated = add_user(passwd, "a", rotate=True)
    assert not rotated.hub_created and read_hub_secret(passwd) == hub_secret
    assert verify_secret(rotated.secret, read_passwd(passwd)["a"])
    assert not verify_secret(login.secret, read_passwd(passwd)["a"])
    with pytest.raises(AccessError, match="hub's own user"):
        add_user(passwd, HUB_USER)


def test_add_device_takes_only_devices_of_the_config(tmp_path: Path) -> None:
    config = hub_config.load(write_hub_config(tmp_path, 1883))
    with pytest.raises(ValueError, match="'c' is not in \\[\\[devices\\]\\]"):
        add_device(config, "c")
    no_passwd = config.model_copy(update={"broker": config.broker.model_copy(update={"passwd_file": None})})
    with pytest.raises(ValueError, match="passwd_file is not set"):
        add_device(no_passwd, "a")


def test_the_config_gives_the_hub_its_login_from_the_file_next_to_the_passwd_file(tmp_path: Path) -> None:
    path = write_hub_config(tmp_path, 1883)
    fresh = hub_config.load(path)  # `check` on a fresh install: no passwd file yet, and that is fine
    assert fresh.broker.passwd_file == tmp_path / "broker.passwd"
    assert (fresh.broker.username, fresh.broker.password) == (HUB_USER, None)
    add_user(tmp_path / "broker.passwd", "a")
    loaded = hub_config.load(path)
    secret = read_hub_secret(tmp_path / "broker.passwd")
    assert secret is not None and (loaded.broker.username, loaded.broker.password) == (HUB_USER, secret)
    (tmp_path / "broker.passwd.hub").chmod(0o644)
    with pytest.raises(ConfigError, match="lets others read the hub's broker password"):
        hub_config.load(path)


@pytest.mark.parametrize(("extra", "message"), [
    ('username = "hub"\n', "remove username and password"),
    ('tls_cert = "broker.pem"\n', "both tls_cert and tls_key"),
])
def test_the_config_refuses_contradictions(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        hub_config.load(write_hub_config(tmp_path, 1883, extra))


def test_the_commands_add_a_device_once_and_export_for_mosquitto(tmp_path: Path) -> None:
    config_path = write_hub_config(tmp_path, 18830)
    Store(f"sqlite:///{tmp_path / 'hub.db'}", SystemClock(ZoneInfo("Asia/Shanghai"))).close()

    def hub(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "hub.cli", "broker", *args, "--config", str(config_path)]
        return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60)

    added = hub("add-device", "--device", "a")
    assert added.returncode == 0, added.stderr
    password = re.findall(r'^password = "([A-Za-z0-9_-]{32})"$', added.stdout, re.M)
    assert re.search(r'^username = "a"$', added.stdout, re.M) and len(password) == 1
    assert verify_secret(password[0], read_passwd(tmp_path / "broker.passwd")["a"])
    again = hub("add-device", "--device", "a")
    assert again.returncode == 2 and "--rotate" in again.stderr and "password =" not in again.stdout
    assert hub("add-device", "--device", "a", "--rotate").returncode == 0
    exported = hub("export", "--out", str(tmp_path / "mosquitto"))
    assert exported.returncode == 0, exported.stderr
    assert "device b has no broker password" in exported.stderr
    conf = (tmp_path / "mosquitto" / "mosquitto.conf").read_text()
    assert "listener 18830 127.0.0.1\n" in conf and "allow_anonymous false\n" in conf
    assert f"password_file {tmp_path / 'mosquitto' / 'passwd'}\n" in conf
    acl = (tmp_path / "mosquitto" / "acl").read_text()
    assert f"user hub\ntopic readwrite {P}/#\n" in acl
    assert (f"user a\ntopic write {P}/a/evt/#\ntopic write {P}/a/state\ntopic write {P}/a/snapshot\n"
            f"topic read {P}/a/cmd/#\n") in acl
    assert set(read_passwd(tmp_path / "mosquitto" / "passwd")) == {HUB_USER, "a"}


# --- on a running broker -----------------------------------------------------------------------


class Peer:
    """An MQTT client as a box or the hub would be, recording what it is told."""

    def __init__(self, port: int, user: str | None, password: str | None, client_id: str, *,
                 tls: ssl.SSLContext | None = None, will: str | None = None) -> None:
        self.port = port
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311, clean_session=True)
        if user is not None:
            self.client.username_pw_set(user, password)
        if tls is not None:
            self.client.tls_set_context(tls)
        if will is not None:
            self.client.will_set(will, b'{"online": false}', qos=1, retain=True)
        self.messages: list[str] = []
        self._connack = threading.Event()
        self.reason = "no CONNACK"
        self._subacks: dict[int, bool] = {}
        self._subscribed = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda client, userdata, message: self.messages.append(message.topic)
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect

    def connect(self) -> str:
        try:
            self.client.connect("127.0.0.1", self.port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            return f"error: {exc}"
        self.client.loop_start()
        self._connack.wait(10)
        return self.reason

    def subscribe(self, topic_filter: str) -> bool:
        """Whether the broker granted the subscription."""
        with self._subscribed:
            _, mid = self.client.subscribe(topic_filter, qos=1)
            assert self._subscribed.wait_for(lambda: mid in self._subacks, 10), topic_filter
            return self._subacks[mid]

    def publish(self, topic: str, payload: bytes = b"{}", retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain)

    def wait_for(self, topic: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while topic not in self.messages:
            assert time.monotonic() < deadline, f"{topic} never came; got {self.messages}"
            time.sleep(0.02)
        time.sleep(0.3)  # anything published before it has come too

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason: mqtt.ReasonCode, properties: object) -> None:
        self.reason = str(reason)
        self._connack.set()
        if reason.is_failure:
            client.disconnect()  # no reconnecting

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason: mqtt.ReasonCode, properties: object) -> None:
        if not self._connack.is_set():
            self.reason = f"closed before CONNACK ({reason})"
            self._connack.set()

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int,
                      reasons: list[mqtt.ReasonCode], properties: object) -> None:
        with self._subscribed:
            self._subacks[mid] = not reasons[0].is_failure
            self._subscribed.notify_all()


@dataclass
class RunningHall:
    kind: str  # "embedded" or "mosquitto"
    port: int
    config: HubConfig
    secrets: dict[str, str]  # user -> password
    peers: list[Peer]

    def peer(self, user: str | None, password: str | None = None, client_id: str | None = None,
             **options: object) -> Peer:
        secret = self.secrets.get(user or "") if password is None else password
        peer = Peer(self.port, user, secret, client_id or f"t-{user}-{len(self.peers)}", **options)  # type: ignore[arg-type]
        self.peers.append(peer)
        return peer

    def connected(self, user: str, **options: object) -> Peer:
        peer = self.peer(user, **options)  # type: ignore[arg-type]
        assert peer.connect() == "Success"
        return peer


@contextmanager
def running_hall(tmp_path: Path, kind: str) -> Iterator[RunningHall]:
    """A hall's broker (embedded, or Mosquitto from the exported files) with devices a and b;
    the peers a test opened are closed and the broker stopped after it."""
    running, server = start_hall(tmp_path, kind)
    try:
        yield running
    finally:
        for peer in running.peers:
            peer.close()
        server.stop()


def start_hall(tmp_path: Path, kind: str) -> tuple[RunningHall, EmbeddedBroker | Mosquitto]:
    port = free_port()
    config = hub_config.load(write_hub_config(tmp_path / "hub", port))
    secrets = {device: add_device(config, device).secret for device in ("a", "b")}
    config = hub_config.load(tmp_path / "hub" / "hub.toml")  # now with the hub's secret
    assert config.broker.password is not None
    secrets[HUB_USER] = config.broker.password
    server: EmbeddedBroker | Mosquitto
    if kind == "embedded":
        server = EmbeddedBroker.for_hub(config)
    else:
        export(config, tmp_path / "mosquitto")
        server = Mosquitto(tmp_path / "mosquitto", port=port, conf=tmp_path / "mosquitto" / "mosquitto.conf")
    server.start()
    return RunningHall(kind, port, config, secrets, []), server


@pytest.fixture(params=["embedded", "mosquitto"])
def hall(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningHall]:
    with running_hall(tmp_path, request.param) as running:
        yield running


@pytest.mark.e2e
def test_anonymous_unknown_and_wrong_password_clients_are_refused_at_connect(hall: RunningHall) -> None:
    assert hall.peer(None).connect() == "Not authorized"
    assert hall.peer("a", password="").connect() == "Not authorized"
    assert hall.peer("a", password=hall.secrets["b"]).connect() == "Not authorized"
    assert hall.peer("nobody", password="x").connect() == "Not authorized"
    assert hall.peer("a").connect() == "Success"


@pytest.mark.e2e
def test_a_device_cannot_publish_under_another_device_or_as_the_hub(hall: RunningHall) -> None:
    hub = hall.connected(HUB_USER)
    assert hub.subscribe(f"{P}/#")
    a = hall.connected("a")
    for topic in (f"{P}/b/evt/clock", f"{P}/b/state", f"{P}/a/cmd/show", f"{P}/b/cmd/show",
                  f"{P}/a/committed", f"{P}/roster", "hall/v1/h2/a/evt/clock"):
        a.publish(topic)
    a.publish(f"{P}/a/state", retain=True)
    a.publish(f"{P}/a/evt/clock")
    hub.wait_for(f"{P}/a/evt/clock")
    assert sorted(hub.messages) == [f"{P}/a/evt/clock", f"{P}/a/state"]


@pytest.mark.e2e
def test_a_device_reads_only_its_commands_its_watermark_and_the_roster(hall: RunningHall) -> None:
    hub, b = hall.connected(HUB_USER), hall.connected("b")
    b.publish(f"{P}/b/state", retain=True)
    hub.publish(f"{P}/b/committed", retain=True)
    hub.publish(f"{P}/a/committed", retain=True)
    hub.publish(f"{P}/roster", retain=True)
    a = hall.connected("a")
    granted = {topic: a.subscribe(topic) for topic in (f"{P}/#", f"{P}/+/state", f"{P}/b/cmd/+")}
    if hall.kind == "embedded":  # Mosquitto grants them and delivers only what the ACL lets through
        assert granted == dict.fromkeys(granted, False)
    for topic in (f"{P}/a/cmd/+", f"{P}/a/committed", f"{P}/roster"):
        assert a.subscribe(topic), topic
    hub.publish(f"{P}/b/cmd/show")
    b.publish(f"{P}/b/evt/clock")
    hub.publish(f"{P}/a/cmd/show")
    a.wait_for(f"{P}/a/cmd/show")
    assert set(a.messages) == {f"{P}/a/committed", f"{P}/roster", f"{P}/a/cmd/show"}


@pytest.mark.e2e
def test_the_hub_user_reads_and_writes_everything_of_the_hall(hall: RunningHall) -> None:
    hub = hall.connected(HUB_USER)
    assert hub.subscribe(f"{P}/#")
    a, b = hall.connected("a"), hall.connected("b")
    assert a.subscribe(f"{P}/a/cmd/+")
    a.publish(f"{P}/a/evt/rating")
    b.publish(f"{P}/b/state", retain=True)
    hub.publish(f"{P}/a/cmd/invite")
    hub.publish(f"{P}/roster", retain=True)
    hub.wait_for(f"{P}/roster")
    a.wait_for(f"{P}/a/cmd/invite")
    assert set(hub.messages) == {f"{P}/a/evt/rating", f"{P}/b/state", f"{P}/a/cmd/invite", f"{P}/roster"}


@pytest.mark.e2e
def test_the_embedded_broker_refuses_a_foreign_will_and_a_foreign_client_id(tmp_path: Path) -> None:
    with running_hall(tmp_path, "embedded") as hall:
        assert hall.peer("a", will=f"{P}/b/state").connect() == "Not authorized"
        assert hall.peer("a", will=f"{P}/a/state").connect() == "Success"
        hall.connected("b", client_id="hall-edge-h1-b").close()
        assert hall.peer("a", client_id="hall-edge-h1-b").connect() == "Not authorized"


@pytest.mark.e2e
def test_a_rotated_password_works_at_once_on_the_running_embedded_broker(tmp_path: Path) -> None:
    with running_hall(tmp_path, "embedded") as hall:
        new = add_device(hall.config, "a", rotate=True).secret
        assert hall.peer("a", password=hall.secrets["a"]).connect() == "Not authorized"
        assert hall.peer("a", password=new).connect() == "Success"


@pytest.mark.e2e
def test_the_hub_logs_in_with_the_secret_next_to_the_passwd_file(tmp_path: Path) -> None:
    hall, server = start_hall(tmp_path, "embedded")
    config = hall.config.model_copy(update={"broker": hall.config.broker.model_copy(
        update={"url": f"mqtt://127.0.0.1:{hall.port}"})})
    store = Store(f"sqlite:///{tmp_path / 'hub.db'}", SystemClock(config.tz))
    service = HubService(config, store.clock, store)
    try:
        with hub_in_thread(service):
            pass  # it logged in: hub_in_thread waits for the connection
    finally:
        store.close()
        server.stop()
    (tmp_path / "hub" / "broker.passwd.hub").unlink()
    without = hub_config.load(tmp_path / "hub" / "hub.toml")
    store = Store(f"sqlite:///{tmp_path / 'hub.db'}", store.clock)
    with pytest.raises(ValueError, match="broker add-device"):
        HubService(without, store.clock, store)
    store.close()


# --- TLS ---------------------------------------------------------------------------------------


def make_hall_ca(directory: Path) -> None:
    """ca.pem, broker.pem and broker.key with the README's openssl commands (for 127.0.0.1)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "broker.ext").write_text(
        "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost, IP:127.0.0.1\n"
        "authorityKeyIdentifier = keyid\nsubjectKeyIdentifier = hash\n", encoding="ascii")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for command in (
        ["req", "-x509", *ec, "-days", "3650", "-subj", "/CN=hall h1 CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-keyout", "ca.key", "-out", "ca.pem"],
        ["req", *ec, "-subj", "/CN=localhost", "-keyout", "broker.key", "-out", "broker.csr"],
        ["x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-days", "825", "-sha256", "-extfile", "broker.ext", "-out", "broker.pem"],
    ):
        subprocess.run(["openssl", *command], cwd=directory, check=True, capture_output=True, timeout=60)


def edge_link(port: int, password: str, ca_file: Path | None) -> MqttLink:
    broker = EdgeBrokerConfig(url=f"mqtts://127.0.0.1:{port}", username="a", password=password,
                              ca_file=ca_file)
    return MqttLink(broker, "hall-edge-h1-a", f"{P}/a/state", [f"{P}/a/cmd/+"], lambda _: None, lambda: None,
                    will_payload=lambda: b"will")  # what the will holds is not this test's matter


@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["embedded", "mosquitto"])
def test_edges_reach_the_broker_over_tls_with_the_hall_ca_only(tmp_path: Path, kind: str) -> None:
    make_hall_ca(tmp_path / "tls")
    port = free_port()
    config = hub_config.load(write_hub_config(
        tmp_path / "hub", port, 'tls_cert = "../tls/broker.pem"\ntls_key = "../tls/broker.key"\n'))
    password = add_device(config, "a").secret
    config = hub_config.load(tmp_path / "hub" / "hub.toml")
    server: EmbeddedBroker | Mosquitto
    if kind == "embedded":
        server = EmbeddedBroker.for_hub(config)
    else:
        export(config, tmp_path / "mosquitto")
        server = Mosquitto(tmp_path / "mosquitto", port=port, conf=tmp_path / "mosquitto" / "mosquitto.conf")
    server.start()
    links = [edge_link(port, password, tmp_path / "tls" / "ca.pem"), edge_link(port, password, None)]
    plain = Peer(port, "a", password, "plain")
    hub = Peer(port, HUB_USER, config.broker.password, "hall-hub-h1", tls=config.broker.client_tls())
    try:
        links[0].start()
        assert links[0].wait_connected(10), "the edge with the hall CA did not connect"
        links[1].start()  # the system's CAs do not know the hall CA
        assert not links[1].wait_connected(3)
        assert plain.connect() != "Success"  # mqtt:// to a TLS listener
        if kind == "embedded":
            assert hub.connect() == "Success"  # the hub pins the broker's own certificate on loopback
    finally:
        for link in links:
            link.close(None, f"{P}/a/state")
        hub.close()
        plain.close()
        server.stop()
