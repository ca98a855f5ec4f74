"""The embedded MQTT broker (amqtt) for a single hall, run on its own thread and event loop.

With a passwd file (`[broker] passwd_file`) every client logs in and `HallAccessPlugin` holds each
user to `TopicAcl` (hub/broker_access.py); without one the broker is open, and says so in the log.
With `tls_cert` and `tls_key` it listens with TLS only.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action, BaseContext
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from hub.broker_access import AccessError, TopicAcl, read_passwd, verify_secret
from hub.config import HubConfig
from wire.topics import DEFAULT_PREFIX

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerAccess:
    passwd_file: Path
    acl: TopicAcl


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


class EmbeddedBroker:
    def __init__(self, listen: str, *, access: BrokerAccess | None = None,
                 tls: TlsFiles | None = None) -> None:
        host, _, port = listen.rpartition(":")
        self.host, self.port = host or "127.0.0.1", int(port)
        self.access = access
        self.tls = tls
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="broker", daemon=True)
        self._broker: Broker | None = None

    @classmethod
    def for_hub(cls, config: HubConfig) -> EmbeddedBroker:
        """The broker `[broker]` describes: logins and the ACL of the hall's devices, TLS."""
        broker = config.broker
        access = None if broker.passwd_file is None else BrokerAccess(
            broker.passwd_file, TopicAcl(config.topic_prefix, config.hall, frozenset(config.device_keys())))
        tls = None if broker.tls_cert is None or broker.tls_key is None else TlsFiles(
            broker.tls_cert, broker.tls_key)
        return cls(broker.listen, access=access, tls=tls)

    def start(self, timeout: float = 10.0) -> None:
        listener: dict[str, Any] = {"type": "tcp", "bind": f"{self.host}:{self.port}"}
        if self.tls is not None:
            listener |= {"ssl": True, "certfile": str(self.tls.cert), "keyfile": str(self.tls.key)}
        config = {"listeners": {"default": listener}, "plugins": self._plugins()}
        self._thread.start()

        async def start() -> Broker:
            broker = Broker(config)
            await broker.start()
            return broker

        self._broker = asyncio.run_coroutine_threadsafe(start(), self._loop).result(timeout)
        scheme = "mqtts" if self.tls else "mqtt"
        if self.access is None:
            log.warning("embedded broker %s://%s:%d is OPEN: anyone may connect, publish and subscribe; "
                        "set [broker] passwd_file and run `hall-hub broker add-device`",
                        scheme, self.host, self.port)
        else:
            log.info("embedded broker %s://%s:%d: logins from %s, topic ACL of hall %s",
                     scheme, self.host, self.port, self.access.passwd_file, self.access.acl.hall)

    def _plugins(self) -> dict[str, dict[str, Any]]:
        if self.access is None:
            return {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
        acl = self.access.acl
        return {f"{__name__}.{HallAccessPlugin.__name__}": {
            "passwd_file": str(self.access.passwd_file), "prefix": acl.prefix, "hall": acl.hall,
            "devices": sorted(acl.devices)}}

    def stop(self, timeout: float = 10.0) -> None:
        if self._broker is not None:
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(timeout)
            self._broker = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)


class HallAccessPlugin(BaseAuthPlugin, BaseTopicPlugin):
    """amqtt plugin: logins checked against the passwd file (re-read when it changes, so a device added
    while the hub runs can log in), every subscribe, publish and delivery against the topic ACL.

    Also refused at CONNECT: a last will outside the user's topics (amqtt publishes wills unchecked),
    and a client id first used by another user (amqtt would hand that user's queued messages over).
    """

    @dataclass
    class Config:
        passwd_file: str = ""
        prefix: str = DEFAULT_PREFIX
        hall: str = ""
        devices: list[str] = field(default_factory=list)

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        settings: HallAccessPlugin.Config = self.config
        self._passwd = Path(settings.passwd_file)
        self.acl = TopicAcl(settings.prefix, settings.hall, frozenset(settings.devices))
        self._users: dict[str, str] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._owners: dict[str, str] = {}  # client id -> the user that first logged in with it

    async def authenticate(self, *, session: Session) -> bool:
        who = f"client {session.client_id!r} from {session.remote_address}"
        if not session.username:
            log.warning("broker refused %s: no username (anonymous)", who)
            return False
        hashed = self._current_users().get(session.username)
        if hashed is None or not await asyncio.to_thread(verify_secret, session.password or "", hashed):
            log.warning("broker refused %s: unknown user or wrong password for %r", who, session.username)
            return False
        if session.will_flag and not self.acl.may_publish(session.username, session.will_topic or ""):
            log.warning("broker refused %s (%s): its last will on %s is outside its topics",
                        who, session.username, session.will_topic)
            return False
        owner = self._owners.setdefault(session.client_id or "", session.username)
        if owner != session.username:
            log.warning("broker refused %s (%s): that client id is %s's", who, session.username, owner)
            return False
        return True

    async def topic_filtering(self, *, session: Session | None = None, topic: str | None = None,
                              action: Action | None = None) -> bool:
        user = session.username if session is not None else None
        if topic is None:
            return False
        if action is Action.SUBSCRIBE:
            allowed = self.acl.may_subscribe(user, topic)
        elif action is Action.PUBLISH:
            allowed = self.acl.may_publish(user, topic)
        else:
            allowed = self.acl.may_receive(user, topic)
        if not allowed and action is not Action.RECEIVE:
            log.warning("broker refused %s by %s (%s): outside its topics", action, user,
                        session.client_id if session is not None else None)
        return allowed

    def _current_users(self) -> dict[str, str]:
        """The passwd file's users, read again whenever the file changed."""
        try:
            status = self._passwd.stat()
        except FileNotFoundError:
            if self._stamp != (0, 0, 0):
                log.error("broker passwd file %s does not exist: every login is refused until "
                          "`hall-hub broker add-device` makes it", self._passwd)
            self._users, self._stamp = {}, (0, 0, 0)
            return self._users
        stamp = (status.st_ino, status.st_mtime_ns, status.st_size)  # add-device replaces the file
        if stamp != self._stamp:
            try:
                self._users = read_passwd(self._passwd)
            except AccessError as exc:
                log.error("broker passwd file unusable, the previous logins stay: %s", exc)
            self._stamp = stamp
        return self._users
