"""A real Mosquitto for tests: started on a free loopback port, stoppable and restartable."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import paho.mqtt.client as mqtt

Message = tuple[str, bytes] | tuple[str, bytes, bool]  # topic, payload[, retain]


def publish(port: int, messages: Iterable[Message], client_id: str | None = None) -> None:
    """Publish at QoS 1 from one short-lived client on 127.0.0.1:`port`, each message acknowledged
    by the broker before the next (so they arrive in order); a third item True retains it."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=client_id or f"publisher-{time.monotonic_ns()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload, *retain in messages:
            client.publish(topic, payload, qos=1, retain=bool(retain and retain[0])).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto") if Path(p).exists()), None
    )
    if found is None:
        raise RuntimeError("mosquitto is not installed: `make test` installs it with apt-get")
    return found


class Mosquitto:
    """No persistence, so a restart loses every queued and retained message (the hard case)."""

    def __init__(self, workdir: Path, port: int | None = None, conf: Path | None = None) -> None:
        """`conf`: run this configuration (e.g. what `hall-hub broker export` wrote, with its passwd
        and acl files) instead of the open default; `port` must then be its listener's."""
        self.port = port or free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        if conf is not None:
            if port is None:
                raise ValueError("give the port of the configuration's listener")
            self.conf = _as_invoking_user(conf, workdir)
            return
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 100000\nmax_inflight_messages 100\nset_tcp_nodelay true\n"
        )

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self.workdir / "mosquitto.log").open("ab")
        self.process = subprocess.Popen([mosquitto_binary(), "-c", str(self.conf)],
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self.workdir / 'mosquitto.log'}") from None
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening within 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


def _as_invoking_user(conf: Path, workdir: Path) -> Path:
    """`conf` itself, or as root a copy with `user root`: started as root, Mosquitto would switch to
    the user `mosquitto`, which cannot read a test's private passwd and acl files."""
    if os.geteuid() != 0:
        return conf
    copy = workdir / f"{conf.stem}.as-root.conf"
    copy.write_text(conf.read_text(encoding="utf-8") + "user root\n", encoding="utf-8")
    return copy
