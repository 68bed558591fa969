"""``pentora server`` and ``pentora server token create|list|revoke``.

``pentora --help`` imports this module: Flask, gevent's server and the engine are
imported by the command's function when it runs.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pentora.cli import EXIT_OK, EXIT_USAGE, CliError, echo

DEFAULT_BIND = "127.0.0.1:8639"


def add_commands(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("server", parents=[common], help="serve the REST API (scans, "
                              "live events, reports) on 127.0.0.1:8639")
    p.add_argument("--bind", default=DEFAULT_BIND, metavar="HOST:PORT",
                   help=f"where to listen (default {DEFAULT_BIND}); any other than loopback "
                        "needs --cert, --key and a token")
    p.add_argument("--config", metavar="FILE", help="server settings (YAML; see docs/server.md)")
    _state(p)
    p.add_argument("--max-scans", type=_positive, metavar="N",
                   help="scans run at once, the rest queued (default: the config's, 2)")
    p.add_argument("--cert", metavar="FILE", help="TLS certificate (PEM), with --key")
    p.add_argument("--key", metavar="FILE", help="TLS private key (PEM), with --cert")
    p.add_argument("--resume-interrupted", action="store_true",
                   help="resume at start the scans a stopped server left interrupted")
    p.add_argument("--executor", choices=["local", "celery"], default="local",
                   help="where scans run: in this process (local) or sharded on `pentora "
                        "worker`s (celery), as `pentora scan --executor`")
    p.add_argument("--broker", metavar="URL",
                   help="Celery broker for --executor celery (redis://HOST:PORT/DB)")
    p.add_argument("--shards", type=_positive, metavar="N",
                   help="shards per scan for --executor celery (8)")
    p.set_defaults(func=cmd_server, cooperative=True,
                   server_scan_parser=subparsers.choices.get("scan"))
    sub = p.add_subparsers(dest="server_command", metavar="COMMAND")
    token = sub.add_parser("token", help="API tokens: create, list, revoke")
    tokens = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    c = tokens.add_parser("create", help="create a token and print it (once)")
    c.add_argument("--scope", required=True, choices=["read", "scan", "admin"],
                   help="read: GET; scan: + submit and cancel; admin: + delete")
    c.add_argument("--name", help="its name in lists and the audit log (default SCOPE-N)")
    _state(c)
    c.set_defaults(func=cmd_token_create, cooperative=False)
    ls = tokens.add_parser("list", help="the tokens (never the tokens themselves)")
    ls.add_argument("--format", choices=["text", "json"], default="text")
    _state(ls)
    ls.set_defaults(func=cmd_token_list, cooperative=False)
    r = tokens.add_parser("revoke", help="revoke a token by name")
    r.add_argument("name")
    _state(r)
    r.set_defaults(func=cmd_token_revoke, cooperative=False)


def _state(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state", metavar="DIR",
                   help="tokens and the audit log (default ~/.local/share/pentora/server)")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a number of scans, 1 or more, not '{text}'")
    return int(text)


def _tokens(args: argparse.Namespace) -> Any:
    from pentora_plugins.server._config import state_dir
    from pentora_plugins.server._tokens import TokenStore

    return TokenStore(state_dir(args.state))


def cmd_token_create(args: argparse.Namespace) -> int:
    name, token = _tokens(args).create(args.scope, args.name)
    echo(f"token '{name}' (scope {args.scope}); shown this once, keep it safe:", err=True)
    print(token)
    return EXIT_OK


def cmd_token_list(args: argparse.Namespace) -> int:
    items = _tokens(args).list()
    if args.format == "json":
        print(json.dumps(items, indent=2))
        return EXIT_OK
    for t in items:
        echo(f"{t['name']}  {t['scope']}  created {t['created']}  last used {t['last_used'] or '-'}")
    if not items:
        echo("no tokens; create one with `pentora server token create --scope read|scan|admin`")
    return EXIT_OK


def cmd_token_revoke(args: argparse.Namespace) -> int:
    _tokens(args).revoke(args.name)
    echo(f"token '{args.name}' revoked")
    return EXIT_OK


def parse_bind(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(f"--bind {text}: expected HOST:PORT, e.g. {DEFAULT_BIND} or [::1]:8639",
                       EXIT_USAGE)
    return host, int(port)


def check_exposure(args: argparse.Namespace, host: str, tokens: Any) -> None:
    """A non-loopback address only with TLS and a token: refused before anything binds."""
    from pentora_plugins.server._config import is_loopback

    if bool(args.cert) != bool(args.key):
        raise CliError("--cert and --key go together: give both (TLS) or neither", EXIT_USAGE)
    if is_loopback(host):
        return
    missing = []
    if not args.cert:
        missing.append("TLS (--cert FILE --key FILE)")
    if not tokens:
        missing.append("a token (`pentora server token create --scope …`)")
    if missing:
        raise CliError(f"--bind {args.bind}: listening beyond loopback needs "
                       f"{' and '.join(missing)}", EXIT_USAGE)


def cmd_server(args: argparse.Namespace) -> int:
    from pentora_plugins.server._config import load_config, state_dir
    from pentora_plugins.server._tokens import TokenStore

    host, port = parse_bind(args.bind)
    config = load_config(args.config)
    if args.max_scans:
        config.max_scans = args.max_scans
    state = state_dir(args.state)
    tokens = TokenStore(state)
    check_exposure(args, host, tokens)
    args.celery_args = celery_args(args)
    from pentora_plugins.server._serve import serve

    return serve(args, host, port, config, state, tokens)


def celery_args(args: argparse.Namespace) -> argparse.Namespace | None:
    """For ``--executor celery``: the namespace ``pentora scan --executor celery --broker URL
    [--shards N]`` parses to, which the distributed plugin's ``pentora_scan_execute`` reads
    (its own option checks apply); None for local scans. Usage errors name the option."""
    if args.executor != "celery":
        if args.broker or args.shards:
            raise CliError("--broker and --shards go with --executor celery", EXIT_USAGE)
        return None
    if not args.broker:
        raise CliError("--executor celery needs --broker URL (e.g. redis://127.0.0.1:6379/0)",
                       EXIT_USAGE)
    if "://" not in args.broker:
        raise CliError(f"--broker: a URL such as redis://127.0.0.1:6379/0, got {args.broker!r}",
                       EXIT_USAGE)
    scan_parser = args.server_scan_parser
    if scan_parser is None or "--executor" not in scan_parser._option_string_actions:
        raise CliError("--executor celery needs the distributed plugin (pentora_plugins."
                       "distributed), which is not loaded: drop -p no:distributed", EXIT_USAGE)
    argv = ["--executor", "celery", "--broker", args.broker]
    if args.shards:
        argv += ["--shards", str(args.shards)]
    # The parser of `pentora scan` itself: the options mean here what they mean there.
    return scan_parser.parse_args(argv)
