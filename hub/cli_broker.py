"""`hall-hub broker add-device|export`: the broker's logins, and the same rules for Mosquitto 2.0."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hub.broker_access import HUB_USER, NewLogin, TopicAcl, add_user, read_passwd
from hub.config import HubConfig
from hub.store.store import Store

Handler = Callable[[argparse.Namespace, HubConfig, Store], int]


def add_commands(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
                 ) -> dict[str, Handler]:
    broker = sub.add_parser("broker", help="MQTT 登录与权限 broker logins and topic ACL")
    broker_sub = broker.add_subparsers(dest="broker_command", required=True)
    add = with_config(broker_sub.add_parser(
        "add-device", help="a broker password for a device of [[devices]] (printed once)"))
    add.add_argument("--device", required=True)
    add.add_argument("--rotate", action="store_true", help="replace the password the device has")
    export = with_config(broker_sub.add_parser(
        "export", help="mosquitto.conf, passwd and acl: the same logins and rules for Mosquitto 2.0"))
    export.add_argument("--out", required=True, type=Path, help="directory to write the three files to")
    export.add_argument("--bridge-to", metavar="URL", help="also a bridge to the city's broker "
                        "(mqtt://host:port or mqtts://): the hall's events and states go up, its "
                        "watermarks, commands and roster come down (hub/city/)")
    export.add_argument("--bridge-username", help="the bridge's login at the city's broker")
    export.add_argument("--bridge-password-file", type=Path, help="a file holding that login's password")
    export.add_argument("--bridge-cafile", type=Path, help="CA that verifies an mqtts:// city broker")
    return {"broker": lambda args, config, store: broker_command(args, config)}


def broker_command(args: argparse.Namespace, config: HubConfig) -> int:
    """`broker add-device|export`: they need neither the store nor the hub's private key."""
    if args.broker_command == "export":
        bridge = None if args.bridge_to is None else Bridge.of(args)
        exported = export(config, args.out, bridge)
        print(f"wrote {exported.conf}, {exported.passwd.name} ({', '.join(exported.users)}) and "
              f"{exported.acl.name}")
        for device in exported.without_login:
            print(f"警告 warning: device {device} has no broker password yet: "
                  f"`hall-hub broker add-device --device {device}`", file=sys.stderr)
        return 0
    login = add_device(config, args.device, rotate=args.rotate)
    passwd = config.broker.passwd_file
    if login.hub_created:
        print(f"the hub's own broker user {HUB_USER!r} was made; its password is in "
              f"{config.broker.hub_secret_file} (mode 0600, for the hub alone)", file=sys.stderr)
    print(f"# [broker] of {login.user}'s edge config; shown once, {passwd} keeps only its hash\n"
          f'username = "{login.user}"\npassword = "{login.secret}"')
    print("a running embedded broker takes the new password at once; for Mosquitto run "
          "`hall-hub broker export` again and reload it", file=sys.stderr)
    return 0


def add_device(config: HubConfig, device: str, *, rotate: bool = False) -> NewLogin:
    """A new broker password for `device` (its hash in the passwd file, and the hub's user made when
    missing); `hall-hub broker add-device` and the demo use this."""
    passwd = _passwd_file(config)
    if device not in config.device_keys():
        raise ValueError(f"device {device!r} is not in [[devices]] of the config: add it there first")
    return add_user(passwd, device, rotate=rotate)


@dataclass(frozen=True)
class Bridge:
    """A Mosquitto bridge from the hall's broker to the city's (`broker export --bridge-to`)."""

    url: str
    username: str | None = None
    password: str | None = None
    cafile: Path | None = None

    @classmethod
    def of(cls, args: argparse.Namespace) -> Bridge:
        parts = urlsplit(args.bridge_to)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"--bridge-to {args.bridge_to!r}: give mqtt://host:port or mqtts://host:port")
        password = None
        if args.bridge_password_file is not None:
            password = args.bridge_password_file.read_text(encoding="utf-8").strip()
        if (args.bridge_username is None) != (password is None):
            raise ValueError("give both --bridge-username and --bridge-password-file, or neither")
        return cls(args.bridge_to, args.bridge_username, password, args.bridge_cafile)

    def section(self, config: HubConfig) -> list[str]:
        """The bridge's lines: persistent session, QoS 1 both ways, the hall's topics only."""
        parts = urlsplit(self.url)
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        hall = f"{config.topic_prefix}/{config.hall}"
        lines = [
            "# Bridge to the city's broker: the hall's events and states go up, the hub's watermarks,",
            "# commands and roster come down; its session persists, so nothing waits lost in a restart.",
            f"connection hall-{config.hall}-city",
            f"address {parts.hostname}:{port}",
            "bridge_protocol_version mqttv311",
            "cleansession false",
            f"remote_clientid bridge-{config.hall}",
            f"local_clientid bridge-{config.hall}-local",
            f"local_username {HUB_USER}",
            "try_private true",
            "restart_timeout 1 30",
            f"topic {hall}/+/evt/# out 1",
            f"topic {hall}/+/state out 1",
            f"topic {hall}/+/snapshot out 1",
            f"topic {hall}/+/committed in 1",
            f"topic {hall}/+/cmd/# in 1",
            f"topic {hall}/roster in 1",
        ]
        if self.username is not None and self.password is not None:
            lines += [f"remote_username {self.username}", f"remote_password {self.password}"]
        if parts.scheme == "mqtts":
            cafile = self.cafile or Path("/etc/ssl/certs/ca-certificates.crt")
            lines.append(f"bridge_cafile {cafile.resolve()}")
        return lines


@dataclass(frozen=True)
class Exported:
    conf: Path
    passwd: Path
    acl: Path
    users: list[str]
    without_login: list[str]  # devices of [[devices]] that have no password yet


def export(config: HubConfig, out: Path, bridge: Bridge | None = None) -> Exported:
    """`mosquitto.conf`, `passwd` and `acl` in `out`: the embedded broker's logins and rules (and
    with `bridge`, the bridge to the city's broker)."""
    passwd_file = _passwd_file(config)
    users = read_passwd(passwd_file)
    if HUB_USER not in users:
        raise ValueError(f"{passwd_file} has no {HUB_USER!r} user yet: `hall-hub broker add-device` makes it")
    devices = sorted(config.device_keys())
    kept = {user: hashed for user, hashed in users.items() if user == HUB_USER or user in devices}
    acl = TopicAcl(config.topic_prefix, config.hall, frozenset(devices))
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    paths = Exported(out / "mosquitto.conf", out / "passwd", out / "acl", list(kept),
                     [device for device in devices if device not in kept])
    _write(paths.passwd, "".join(f"{user}:{hashed}\n" for user, hashed in kept.items()), 0o600)
    _write(paths.acl, acl.mosquitto_acl(), 0o644)
    conf = mosquitto_conf(config, paths.passwd, paths.acl)
    if bridge is not None:  # its password, if any, is in it: readable by Mosquitto alone
        conf += "\n".join(["", *bridge.section(config)]) + "\n"
    _write(paths.conf, conf, 0o600 if bridge is not None and bridge.password else 0o644)
    return paths


def mosquitto_conf(config: HubConfig, passwd: Path, acl: Path) -> str:
    broker = config.broker
    host, _, port = broker.listen.rpartition(":")
    bind = "" if host in ("", "0.0.0.0", "::", "[::]") else f" {host}"
    lines = [
        f"# Mosquitto 2.0 for hall {config.hall}, written by `hall-hub broker export` (hall-hardware).",
        "# Every client logs in (passwd holds hashes only) and acl holds each device to its own topics;",
        f"# the hub logs in as {HUB_USER!r}. Persistence, logging and the pid file stay in the main config.",
        f"listener {port}{bind}",
    ]
    if broker.tls_cert is not None and broker.tls_key is not None:
        lines += ["# TLS: edges use mqtts:// with the hall CA in their [broker] ca_file",
                  f"certfile {broker.tls_cert.resolve()}", f"keyfile {broker.tls_key.resolve()}"]
    lines += [
        "allow_anonymous false",
        f"password_file {passwd}",
        f"acl_file {acl}",
        "set_tcp_nodelay true",
        "# Mosquitto's default of 1000 silently drops QoS 1 messages queued for a slow subscriber.",
        "max_queued_messages 100000",
    ]
    return "\n".join(lines) + "\n"


def _passwd_file(config: HubConfig) -> Path:
    if config.broker.passwd_file is None:
        raise ValueError('[broker] passwd_file is not set: add e.g. passwd_file = "broker.passwd" '
                         "(relative to the config file) to the hub's config")
    return config.broker.passwd_file


def _write(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)  # an older copy may have had another mode
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
