"""The server's configuration file (``--config FILE``, YAML): its schema and defaults."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import voluptuous as vol
from pentora_plugins.server._webhooks import WEBHOOK_SCHEMA
from voluptuous.humanize import humanize_error

from pentora import InputError, load_yaml, read_input
from pentora.cli import EXIT_USAGE, CliError
from pentora.schema import Nullable, PositiveInt, Size, Str

DEFAULT_ALLOW = ["127.0.0.0/8", "::1/128"]
MAX_CONFIG = 1 << 20


SCHEMA = vol.Schema({
    vol.Optional("allow", default=DEFAULT_ALLOW,
                 description="networks (CIDR, ranges) and host names this server may scan"):
        [Str()],
    vol.Optional("max_body", default=1 << 20, description="largest request body, bytes"): Size(),
    vol.Optional("max_dag_nodes", default=200, description="most nodes a submitted DAG may have"):
        PositiveInt(),
    vol.Optional("max_scans", default=2, description="scans run at once; the rest wait"):
        PositiveInt(),
    vol.Optional("login_attempts", default=5,
                 description="failed UI logins per client address per minute"): PositiveInt(),
    vol.Optional("webhooks", default=[],
                 description="receivers of the schedules' change alerts (url, secret, "
                             "min_severity, headers, name)"): [WEBHOOK_SCHEMA],
    vol.Optional("store", default=None,
                 description="the scan store file (default: the command line's)"): Nullable(Str()),
})


@dataclass
class ServerConfig:
    allow: list[str] = field(default_factory=lambda: list(DEFAULT_ALLOW))
    max_body: int = 1 << 20
    max_dag_nodes: int = 200
    max_scans: int = 2
    login_attempts: int = 5
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    store: str | None = None


def load_config(path: str | None) -> ServerConfig:
    """The configuration in ``path`` (None: the defaults); ``CliError`` naming the file and
    the key of every problem."""
    if path is None:
        return ServerConfig(**SCHEMA({}))
    try:
        text = read_input(path, what="server config", max_bytes=MAX_CONFIG)
        data = load_yaml(text, path, what="server config", max_bytes=MAX_CONFIG)
    except InputError as e:
        raise CliError(f"--config {e}", EXIT_USAGE) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CliError(f"--config {path}: expected a mapping of settings (allow, max_body, "
                       f"max_scans…), got {type(data).__name__}", EXIT_USAGE)
    try:
        values = SCHEMA(data)
    except vol.MultipleInvalid as e:
        problems = "; ".join(_problem(data, err) for err in e.errors)
        raise CliError(f"--config {path}: {problems} (settings: {', '.join(_keys())})",
                       EXIT_USAGE) from None
    config = ServerConfig(**values)
    for item in config.allow:
        _check_allow(path, item)
    return config


def _problem(data: Any, err: vol.Invalid) -> str:
    if "secret" in err.path:  # humanize_error repeats the value: never a webhook's secret
        return f"{err.msg} @ data{''.join(f'[{p!r}]' for p in err.path)}"
    return humanize_error(data, err).replace("\n", " ")


def _keys() -> list[str]:
    return [str(k) for k in SCHEMA.schema]


def _check_allow(path: str, item: str) -> None:
    from pentora_plugins.kit.targetspec import TargetSpecError, parse_spec

    if item.startswith("@"):
        raise CliError(f"--config {path}: allow: '{item}': list networks and names here, not "
                       "files", EXIT_USAGE)
    try:
        parse_spec(item)
    except TargetSpecError as e:
        raise CliError(f"--config {path}: allow: {e}", EXIT_USAGE) from None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address) is loopback: ``localhost`` or 127/8, ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def state_dir(given: str | None) -> Path:
    """``--state DIR`` or ``~/.local/share/pentora/server`` (``$XDG_DATA_HOME``), 0700."""
    import os

    if given:
        path = Path(given).expanduser()
    else:
        base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                               "share")
        path = Path(base) / "pentora" / "server"
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.chmod(0o700)
    except OSError as e:
        raise CliError(f"--state {path}: cannot create it ({e.strerror}); choose another folder",
                       EXIT_USAGE) from None
    return path
