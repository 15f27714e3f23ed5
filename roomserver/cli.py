"""The ``roomserver`` command line.

Every failure prints one line to stderr and exits non-zero: 2 for bad
settings, 1 for anything else. Commands other than ``serve`` work on the same
data directory as the server (SQLite in WAL mode allows both at once).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from typing import Sequence, TextIO

from . import __version__, bootstrap, config, demo
from .api import iso, parse_time, room_json
from .auth import Principal
from .errors import RoomServerError
from .keys import ALGORITHMS, KeySet, KeySetError
from .roles import Role
from .store import StoreError

CLI_PRINCIPAL = Principal(kind="cli", id="cli", role="system", display_name="command line")


class CliError(Exception):
    """A one-line failure of a command."""


def _settings(args: argparse.Namespace) -> config.Settings:
    settings = config.load(args.config)
    if getattr(args, "host", None):
        settings.server.host = args.host
    if getattr(args, "port", None) is not None:
        settings.server.port = args.port
    return settings


def _prepare(settings: config.Settings) -> bootstrap.FirstStart:
    """First-start setup for a command other than ``serve``.

    What it generated is shown now, on stderr (stdout stays the command's
    output): the API key and demo passwords are never shown again.
    """
    first = bootstrap.prepare(settings, int(time.time()))
    if first.api_key:
        print(f"API key (saved in {first.api_key_path}, shown only now): {first.api_key}", file=sys.stderr)
    print_logins(first.demo_logins, file=sys.stderr)
    return first


def _services(args: argparse.Namespace):
    from .services import build_services

    settings = _settings(args)
    _prepare(settings)
    return build_services(settings)


def _check_listen(host: str, port: int) -> None:
    """Fail before a first start generates passwords it could then never show."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in infos:
            with socket.socket(family, kind, proto) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import serve

    settings = _settings(args)
    _check_listen(settings.server.host, settings.server.port)
    first = bootstrap.prepare(settings, int(time.time()))
    return serve(settings, first)


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    problems = []
    if settings.keys_dir.joinpath("keyset.json").exists():
        try:
            KeySet.open(settings.keys_dir)
        except KeySetError as exc:
            problems.append(str(exc))
    if problems:
        raise CliError(problems[0])
    print(f"config OK: {settings.source}")
    print(f"  listens on {settings.server.host}:{settings.server.port}, links use {settings.base_url}")
    print(f"  data in {settings.data_dir}, database {settings.store_path}, keys {settings.keys_dir}")
    print(f"  tokens {settings.tokens.algorithm}, iss={settings.tokens.issuer}, aud={settings.tokens.audience}")
    ice = len(settings.ice.stun_urls) + len(settings.ice.turn_urls)
    print(f"  ICE servers: {ice}, TURN secret: {'set' if settings.turn_secret else 'not set'}")
    return 0


def cmd_create_room(args: argparse.Namespace) -> int:
    svc = _services(args)
    try:
        room = svc.consultations.create(
            CLI_PRINCIPAL, title=args.title, scheduled_start=parse_time(args.start, "--start"),
            scheduled_end=parse_time(args.end, "--end"),
            waiting_room=None if args.waiting_room is None else args.waiting_room,
            max_participants=args.max_participants, now=svc.now())
        if args.json:
            print(json.dumps(room_json(room), indent=2))
        else:
            print(f"Raum angelegt / room created: {room.id}")
            print(f"  {room.title}  {iso(room.scheduled_start) or ''} - {iso(room.scheduled_end) or ''}")
            print(f"  waiting room: {'on' if room.waiting_room else 'off'}, max {room.max_participants}")
    finally:
        svc.close()
    return 0


def cmd_invite(args: argparse.Namespace) -> int:
    svc = _services(args)
    try:
        single_use = None if args.single_use is None else args.single_use
        invite = svc.consultations.invite(CLI_PRINCIPAL, args.room, role=Role(args.role), name=args.name,
                                          lifetime=args.lifetime, single_use=single_use, now=svc.now())
        if args.json:
            print(json.dumps({"jti": invite.jti, "token": invite.token, "join_url": invite.join_url,
                              "not_before": iso(invite.not_before), "expires_at": iso(invite.expires_at),
                              "single_use": invite.single_use}, indent=2))
        else:
            print(invite.join_url)
            print(f"  valid {iso(invite.not_before)} to {iso(invite.expires_at)}"
                  f"{', single use' if invite.single_use else ''}; id {invite.jti}", file=sys.stderr)
    finally:
        svc.close()
    return 0


def cmd_end_room(args: argparse.Namespace) -> int:
    svc = _services(args)
    try:
        svc.consultations.end(CLI_PRINCIPAL, args.room, reason="api", now=svc.now())
        print(f"ended {args.room}")
    finally:
        svc.close()
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.keys_command == "rotate":
        alg = args.alg or settings.tokens.algorithm
        if not settings.keys_dir.joinpath("keyset.json").exists():
            key = KeySet.open(settings.keys_dir, create_alg=alg).active
        else:
            key = KeySet.open(settings.keys_dir).rotate(alg)
        print(f"new active key {key.kid} ({key.alg}); older keys keep verifying until removed")
        return 0
    keyset = KeySet.open(settings.keys_dir)
    if args.keys_command == "remove":
        keyset.remove(args.kid)
        print(f"removed {args.kid}; tokens it signed no longer verify")
        return 0
    for key in keyset.keys():
        print(f"{key.kid}  {key.alg:6}  created {iso(key.created_at)}  {'active' if key.active else 'verify-only'}")
    return 0


def cmd_seed_demo(args: argparse.Namespace) -> int:
    from .store import Store

    settings = _settings(args)
    first = bootstrap.prepare(settings, int(time.time()))
    if first.api_key:
        print(f"API key (saved in {first.api_key_path}, shown only now): {first.api_key}")
    store = Store.open(settings.store_path, synchronous=settings.store.synchronous)
    try:
        seeded = demo.seed(store, int(time.time()), reset_passwords=args.reset_passwords)
        # A first start may have seeded already: show its passwords, unless reset since.
        logins = list({login.username: login for login in [*first.demo_logins, *seeded]}.values())
    finally:
        store.close()
    if not logins:
        print("demo data is complete; nothing changed (use --reset-passwords for new passwords)")
    print_logins(logins)
    return 0


def print_logins(logins: Sequence[demo.DemoLogin], file: TextIO | None = None) -> None:
    if not logins:
        return
    print("Demo-Anmeldungen / demo sign-ins (shown only now, write them down):", file=file)
    for login in logins:
        print(f"  {login.role:12} {login.username:10} {login.password}", file=file)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roomserver",
        description="Room server for networked hybrid counselling: video rooms, tokens, signalling.")
    parser.add_argument("--version", action="version", version=f"roomserver {__version__}")
    config_help = "settings file (default: $ROOMSERVER_CONFIG, else config/roomserver.toml)"
    parser.add_argument("--config", metavar="PATH", help=config_help)
    # --config is also accepted after the command ('roomserver check-config --config PATH');
    # SUPPRESS keeps a value given before the command when none is given after it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=config_help)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(group: argparse._SubParsersAction, name: str, **kwargs: str) -> argparse.ArgumentParser:
        return group.add_parser(name, parents=[common], **kwargs)

    p = command(sub, "serve", help="run the server (creates keys and demo data on first start)")
    p.add_argument("--host", help="listen address (overrides [server] host)")
    p.add_argument("--port", type=int, help="listen port (overrides [server] port)")
    p.set_defaults(func=cmd_serve)

    p = command(sub, "check-config", help="validate the settings and print a summary")
    p.set_defaults(func=cmd_check_config)

    p = command(sub, "create-room", help="create a consultation room")
    p.add_argument("--title", required=True, help="title staff see, e.g. 'Beratung 10:30'")
    p.add_argument("--start", help="scheduled start, RFC 3339 (e.g. 2026-11-25T10:30:00+01:00)")
    p.add_argument("--end", help="scheduled end, RFC 3339 (default: start + rooms.default_duration_minutes)")
    p.add_argument("--waiting-room", dest="waiting_room", action="store_true", default=None,
                   help="citizens wait until admitted (default from config)")
    p.add_argument("--no-waiting-room", dest="waiting_room", action="store_false")
    p.add_argument("--max-participants", type=int, help="2 to 6 endpoints")
    p.add_argument("--json", action="store_true", help="print the room as JSON")
    p.set_defaults(func=cmd_create_room)

    p = command(sub, "invite", help="mint a join link for one person")
    p.add_argument("room", help="room id (r_...)")
    p.add_argument("--role", required=True, choices=[r.value for r in Role])
    p.add_argument("--name", required=True, help="display name shown in the room")
    p.add_argument("--lifetime", type=int, metavar="SECONDS", help="valid from now for this long")
    p.add_argument("--single-use", dest="single_use", action="store_true", default=None)
    p.add_argument("--multi-use", dest="single_use", action="store_false")
    p.add_argument("--json", action="store_true", help="print token and link as JSON")
    p.set_defaults(func=cmd_invite)

    p = command(sub, "end-room", help="end a room: disconnect everyone, withdraw every token")
    p.add_argument("room", help="room id (r_...)")
    p.set_defaults(func=cmd_end_room)

    p = command(sub, "keys", help="list, rotate or remove token signing keys")
    keys = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    command(keys, "list", help="show the key set")
    k = command(keys, "rotate", help="add a new active key; older keys keep verifying")
    k.add_argument("--alg", choices=ALGORITHMS, help="algorithm (default from config)")
    k = command(keys, "remove", help="remove a retired key; tokens it signed stop working")
    k.add_argument("kid")
    p.set_defaults(func=cmd_keys)

    p = command(sub, "seed-demo", help="create the demo departments and accounts (prints passwords once)")
    p.add_argument("--reset-passwords", action="store_true", help="give existing demo accounts new passwords")
    p.set_defaults(func=cmd_seed_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except config.ConfigError as exc:
        print(f"roomserver: {exc}", file=sys.stderr)
        return 2
    except (CliError, KeySetError, StoreError) as exc:
        print(f"roomserver: {exc}", file=sys.stderr)
        return 1
    except RoomServerError as exc:
        print(f"roomserver: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"roomserver: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
