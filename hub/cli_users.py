"""`hall-hub user add|list|disable|token|revoke-token` and `hall-hub web`: the console's accounts
(hub/store/users.py) and serving the console alone. Given a city config the same commands keep the
city's users in its `[city] store` and serve the city console (hub/city/cli.py)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hub.config import HubConfig, WebConfig
from hub.operators import signing
from hub.store.store import Store
from hub.store.users import ROLE_ZH, ROLES, add_user, all_users, disable_user, issue_token, revoke_tokens
from hub.text import table

if TYPE_CHECKING:
    from hub.web.serve import WebServer

Handler = Callable[[argparse.Namespace, HubConfig, Store], int]
BY = "who does it (the entry also names the OS user and host)"


def add_commands(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
                 ) -> dict[str, Handler]:
    user = sub.add_parser("user", help="控制台用户 console users and API tokens")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = with_config(user_sub.add_parser("add", help="add a user; the password is read from stdin "
                                                      "(one line)"))
    add.add_argument("--name", required=True)
    add.add_argument("--role", required=True, choices=ROLES,
                     help="inspector 督查, manager 中心负责人, staff 窗口人员")
    add.add_argument("--staff", help="the roster id a staff account speaks for (role staff only)")
    add.add_argument("--halls", help="a city's user only: the halls it may see, h01,h02 (default: all)")
    signing(add, BY)
    listing = with_config(user_sub.add_parser("list", help="users, roles, state and token ids "
                                                           "(never a hash)"))
    listing.add_argument("--json", action="store_true")
    disable = with_config(user_sub.add_parser("disable", help="disable a user for good (sessions and "
                                                              "tokens stop at once)"))
    disable.add_argument("--name", required=True)
    signing(disable, BY)
    token = with_config(user_sub.add_parser("token", help="issue an API token and print it once"))
    token.add_argument("--name", required=True)
    signing(token, BY)
    revoke = with_config(user_sub.add_parser("revoke-token", help="revoke one token, or all of a user's"))
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--name", help="every token of this user")
    which.add_argument("--id", help="the token with this id (`user list`)")
    signing(revoke, BY)
    web = with_config(sub.add_parser("web", help="serve the web console alone (an inspector's copy of "
                                                 "the store; needs [web] listen), or a city's console"))
    web.add_argument("--listen", help="HOST:PORT instead of [web] listen (a city's: [city.web] listen)")
    return {"user": _user, "web": _web}


def _user(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    if getattr(args, "halls", None) is not None:
        raise ValueError("--halls is for a city's users (--config city.toml): a hall's users see its hall")
    return user_command(args, {m.id for m in config.staff}, store)


def user_command(args: argparse.Namespace, roster: set[str], store: Store,
                 halls: list[str] | None = None) -> int:
    """`roster`: the staff ids a staff account may speak for; `halls`: a city's user's halls."""
    command = args.user_command
    if command == "add":
        if args.staff is not None and args.staff not in roster:
            raise ValueError(f"staff {args.staff!r} is not on the roster")
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if sys.stdin.read(1):
            raise ValueError("give the password alone on one line of stdin")
        done = add_user(store, args.name, args.role, args.staff, password, args.by, halls)
        print(f"已添加用户 user {done.name} added: {ROLE_ZH[done.role]} {done.role}"
              + (f", staff {done.staff}" if done.staff else "")
              + (f", halls {','.join(done.halls)}" if done.halls else ""))
        return 0
    if command == "disable":
        disable_user(store, args.name, args.by)
        print(f"已停用 user {args.name} disabled")
        return 0
    if command == "token":
        token_id, token = issue_token(store, args.name, args.by)
        print(f"# token {token_id} for {args.name}: shown once, keep it secret "
              f"(Authorization: Bearer ...)", file=sys.stderr)
        print(token)
        return 0
    if command == "revoke-token":
        ids = revoke_tokens(store, by=args.by, name=args.name, token_id=args.id)
        print(f"已撤销 revoked {len(ids)} token(s): {' '.join(ids) or '-'}")
        return 0
    found = all_users(store)
    if args.json:
        print(json.dumps([{"name": u.name, "role": u.role, "staff": u.staff, "disabled": u.disabled,
                           "tokens": list(u.tokens), **({} if u.halls is None else {"halls": list(u.halls)})}
                          for u in found], ensure_ascii=False, indent=1))
        return 0
    limited = any(u.halls is not None for u in found)  # a city's users: their halls too
    print(table(("用户", "角色", "工号", "状态", "令牌", *(("大厅",) if limited else ())),
                [(u.name, f"{ROLE_ZH[u.role]} {u.role}", u.staff, "停用" if u.disabled else "有效",
                  " ".join(u.tokens) or None, *((",".join(u.halls or ()) or "全部",) if limited else ()))
                 for u in found]))
    return 0


def _web(args: argparse.Namespace, config: HubConfig, store: Store) -> int:
    from hub.web.serve import WebServer

    config = config.model_copy(update={"web": listening(config.web, args.listen)})
    if not config.web.listen:
        raise ValueError(f"{args.config}: [web] listen is not set (e.g. listen = \"127.0.0.1:8080\")")
    serve_until_signalled(WebServer.of_hall(config, store))
    return 0


def listening(web: WebConfig, listen: str | None) -> WebConfig:
    """A console's `[web]` (a city's `[city.web]`) with `--listen` in place of its `listen`, if given."""
    return web if not listen else WebConfig.model_validate({**web.model_dump(), "listen": listen})


def serve_until_signalled(server: WebServer) -> None:
    """Serve a console until SIGTERM or SIGINT."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.serve_until(stop)
