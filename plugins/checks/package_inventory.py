"""``package_inventory``: the packages installed on each SSH host, read by logging in.

A credentialed check, off unless a user and a credential are given (``pentora scan
--ssh-user USER --ssh-key FILE`` or ``--ssh-password-env VAR``). For each host with a port
fingerprinted as ``ssh`` it logs in with paramiko, checks the host key against a
known_hosts file (trust on first use: an unknown key is recorded, a changed one fails
that host), runs ``cat /etc/os-release`` and then the package manager's list command
(``dpkg-query -W``, ``rpm -qa`` or ``apk list --installed``; no other command is ever
sent), and writes one ``InstalledPackages`` record per host to ``packages``: the
distribution, release, codename, manager and every installed package with its version,
source package and architecture. A vulnerability matcher compares those versions with
the distributions' fixed versions, which is what a banner cannot tell.

The config holds the key file's path and the password's environment variable name,
never a secret; the secrets are read when the node runs and kept out of every message.
What the host prints is hostile text: bounded (``max_output``, ``max_lines``,
``command_timeout``) and checked line by line (``_packages``).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import voluptuous as vol
from pentora_plugins.checks import _packages, _ssh_login
from pentora_plugins.checks._ssh_login import Auth, KnownHosts, Limits, LoginError, Scrubber
from pentora_plugins.kit.inputs import per_item, publish
from pentora_plugins.kit.records import InstalledPackages, ServiceFingerprint

from pentora import Module, ModuleError, NodeContext
from pentora.schema import Bool, Duration, Int, Nullable, PositiveInt, Size, Str

DEFAULT_KNOWN_HOSTS = "~/.config/pentora/known_hosts"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# When os-release names no package manager we know: the list commands, tried in turn.
_FALLBACK = ("dpkg", "rpm", "apk")


def _env_name(value: object) -> str:
    if not isinstance(value, str) or (value and not _ENV_NAME.fullmatch(value)):
        raise vol.Invalid(f"expected the NAME of an environment variable (letters, digits, _), "
                          f"got {value!r}; the password itself never goes in a config")
    return value


_env_name.__name__ = "environment variable name"


class PackageInventory(Module):
    """Installed packages of each SSH host, by logging in (credentialed; off without a user)."""

    module_type = "package_inventory"
    description = ("installed packages (dpkg, rpm, apk) and distribution of each SSH host, read "
                   "by logging in with a key or a password")
    requires = ("service_fingerprints",)
    produces = ("packages",)
    config_schema = {
        vol.Optional("user", default="", description="the user to log in as (required to run)"): Str(),
        vol.Optional("key", default="", description="path of an unencrypted private key file "
                     "(OpenSSH or PEM: Ed25519, ECDSA, RSA)"): Str(),
        vol.Optional("password_env", default="", description="NAME of the environment variable "
                     "holding the password (tried after the key, if both are given)"): _env_name,
        vol.Optional("known_hosts", default=DEFAULT_KNOWN_HOSTS,
                     description="OpenSSH known_hosts file the host keys are checked against"): Str(),
        vol.Optional("trust_on_first_use", default=True,
                     description="record an unknown host key and log in (then enforce it); "
                     "false: refuse hosts not in known_hosts"): Bool(),
        vol.Optional("port", default=None, description="log in on this port on every "
                     "fingerprinted host instead of its ports fingerprinted as ssh"):
            Nullable(Int(min=1, max=65535)),
        vol.Optional("timeout", default="10s", description="connect, handshake, authentication "
                     "and each wait for output"): Duration(min=0.001),
        vol.Optional("command_timeout", default="120s",
                     description="the longest one command may run"): Duration(min=0.001),
        vol.Optional("max_output", default="32MB",
                     description="the most one command may print; more is refused"): Size(),
        vol.Optional("max_lines", default=200000,
                     description="the most lines one command may print; more are refused"): PositiveInt(),
    }

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        auth, scrub = load_auth(config)
        known = KnownHosts(Path(os.path.expanduser(config["known_hosts"])), config["trust_on_first_use"])
        limits = Limits(config["timeout"], config["command_timeout"], config["max_output"],
                        config["max_lines"])
        try:
            known.recorded("", 0)  # a file that cannot be read fails the node once, not each host
        except LoginError as e:
            raise ModuleError(f"package_inventory: {e}") from None
        targets = ssh_targets(ctx.get("service_fingerprints"), config["port"])
        _ssh_login.quiet_paramiko()
        ctx.log.debug("package_inventory: logins run {}", "in the node's greenlets (monkey-patched)"
                      if _ssh_login.cooperative() else "on gevent's thread pool (not monkey-patched)")

        def inventory(item: tuple[str, list[int]]) -> InstalledPackages | list[str]:
            host, ports = item
            errors: list[str] = []
            for port in ports:
                notes: list[tuple[str, str]] = []
                try:
                    record = _ssh_login.run_blocking(
                        functools.partial(read_host, host, port, auth, known, limits, scrub, notes))
                except LoginError as e:
                    errors.append(str(e))
                    ctx.log.warning("package_inventory: {}", e)
                    continue
                finally:
                    for level, note in notes:
                        ctx.log.log(level.upper(), "package_inventory: {}", note)
                ctx.emit(record)
                return record
            return errors

        found, errors = [], []
        for result in per_item(ctx, inventory, targets, None):
            if isinstance(result, InstalledPackages):
                found.append(result)
            else:
                errors += result
        ctx.log.info("package_inventory: {} of {} SSH hosts inventoried", len(found), len(targets))
        publish(ctx, "packages", found)
        if targets and not found:
            shown = "; ".join(errors[:3]) + (f"; and {len(errors) - 3} more" if len(errors) > 3 else "")
            raise ModuleError(f"package_inventory: no SSH host could be inventoried: {shown}")


def load_auth(config: dict[str, Any]) -> tuple[Auth, Scrubber]:
    """The user, the key (loaded) and the password (from the environment), and a Scrubber
    of both; ModuleError naming the option when one cannot be used."""
    import paramiko

    user, key_path, env = config["user"], config["key"], config["password_env"]
    if not user:
        raise ModuleError("package_inventory needs a user: set `user` (pentora scan --ssh-user USER)")
    if not key_path and not env:
        raise ModuleError("package_inventory needs a credential: set `key` to a private key file "
                          "(--ssh-key FILE) or `password_env` to the name of an environment "
                          "variable holding the password (--ssh-password-env VAR)")
    secrets: list[str] = []
    key = password = None
    if key_path:
        path = os.path.expanduser(key_path)
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
            secrets += [line.strip() for line in text.splitlines() if "PRIVATE KEY" not in line]
            key = paramiko.PKey.from_path(path)
        except OSError as e:
            raise ModuleError(f"package_inventory: cannot read the key file {key_path} (key): "
                              f"{e.strerror or type(e).__name__}") from None
        except (paramiko.SSHException, ValueError, TypeError) as e:
            # An encrypted key: paramiko's own exception for PEM keys, cryptography's
            # TypeError ("password-protected") for OpenSSH ones.
            if isinstance(e, paramiko.PasswordRequiredException) or (
                    isinstance(e, TypeError) and "password" in str(e)):
                raise ModuleError(f"package_inventory: the key file {key_path} (key) is encrypted: "
                                  "give a key without a passphrase, or a password "
                                  "(password_env)") from None
            raise ModuleError(f"package_inventory: {key_path} (key) is not a private key paramiko "
                              "reads (OpenSSH or PEM format: Ed25519, ECDSA or RSA)") from None
    if env:
        password = os.environ.get(env)
        if not password:
            raise ModuleError(f"package_inventory: the environment variable {env} (password_env) "
                              f"is {'empty' if password == '' else 'not set'}: export it with the "
                              "password before the scan")
        secrets.append(password)
    return (Auth(user, key=key, key_path=key_path or None, password=password,
                 password_env=env or None), Scrubber(secrets))


def ssh_targets(fingerprints: Iterable[Any], port: int | None) -> list[tuple[str, list[int]]]:
    """(host, ports to try in turn): each host's ports fingerprinted as ``ssh``, lowest
    first; with ``port``, that port on every fingerprinted host."""
    ports: dict[str, set[int]] = {}
    for fp in fingerprints:
        if isinstance(fp, ServiceFingerprint):
            host, number, service = fp.host, fp.port, fp.service
        else:
            host, number, service = fp["host"], int(fp["port"]), fp.get("service")
        if port is not None:
            ports.setdefault(host, {port})
        elif (service or "").lower() == "ssh":
            ports.setdefault(host, set()).add(number)
    return [(host, sorted(p)) for host, p in ports.items()]


def read_host(host: str, port: int, auth: Auth, known: KnownHosts, limits: Limits,
              scrub: Scrubber, notes: list[tuple[str, str]]) -> InstalledPackages:
    """Log in to host:port and read its distribution and packages (blocking: see
    ``_ssh_login.run_blocking``)."""
    where = f"{host}:{port}"
    with _ssh_login.login(host, port, auth, known, limits, scrub, notes) as runner:
        status, text, _ = runner.run(_ssh_login.OS_RELEASE)
        system = _packages.system_of(_packages.parse_os_release(text if status == 0 else ""))
        for manager in [system.manager] if system.manager else list(_FALLBACK):
            status, text, err = runner.run(_ssh_login.COMMANDS[manager])
            if status == _ssh_login.NOT_FOUND and system.manager is None:
                continue
            if status != 0:
                said = err.strip().splitlines()[-1] if err.strip() else "no message"
                command = _ssh_login.SHORT[_ssh_login.COMMANDS[manager]]
                raise LoginError(f"{where}: '{command}' exited with {status}: {scrub(said)}")
            return _record(host, port, system, manager, text, notes)
    raise LoginError(f"{where}: none of dpkg-query, rpm and apk is installed, and /etc/os-release "
                     "names no distribution package_inventory knows")


def _record(host: str, port: int, system: _packages.System, manager: str, text: str,
            notes: list[tuple[str, str]]) -> InstalledPackages:
    parsed = _packages.PARSERS[manager](_lines(text))
    where = f"{host}:{port}"
    if not parsed.packages:
        why = (f"none of its {parsed.refused} lines is a package ({'; '.join(parsed.reasons)})"
               if parsed.refused else "it lists no installed package")
        raise LoginError(f"{where}: the {manager} package list is refused: {why}")
    if parsed.refused:  # the rest is still the host's list: kept, and what was left out said
        notes.append(("warning", f"{where}: {parsed.refused} lines of the {manager} package list "
                                 f"were refused and left out ({'; '.join(parsed.reasons)})"))
    packages = sorted(parsed.packages, key=lambda p: (p["name"], p["arch"] or ""))
    return InstalledPackages(host=host, distribution=system.distribution, release=system.release,
                             codename=system.codename, manager=manager, packages=packages, port=port)


def _lines(text: str) -> Iterator[str]:
    for line in text.split("\n"):
        if line:
            yield line



def check_cli_credentials(given: dict[str, str], dag: Any, options: dict[str, str]) -> None:
    """The ``pentora scan`` SSH options make sense together and reach the DAG; CliError
    (a usage error, before anything runs) naming the option otherwise."""
    from pentora.cli import EXIT_USAGE, CliError

    missing = [options[var] for var in given if var not in dag.vars]
    if missing:
        raise CliError(f"DAG '{dag.name}' declares no '{missing[0].lstrip('-').replace('-', '_')}' "
                       f"var, so {missing[0]} cannot reach it; use the standard or vuln-scan "
                       "profile, or set package_inventory's config in the DAG", EXIT_USAGE)
    if not given.get("ssh_user"):
        raise CliError("--ssh-key and --ssh-password-env need --ssh-user USER", EXIT_USAGE)
    if not given.get("ssh_key") and not given.get("ssh_password_env"):
        raise CliError("--ssh-user needs a credential: --ssh-key FILE or --ssh-password-env VAR",
                       EXIT_USAGE)
    key = given.get("ssh_key")
    if key is not None and not os.access(os.path.expanduser(key), os.R_OK):
        raise CliError(f"--ssh-key {key}: no readable file there", EXIT_USAGE)
    env = given.get("ssh_password_env")
    if env is not None:
        if not _ENV_NAME.fullmatch(env):
            # Not echoed: what was given may be the password itself.
            raise CliError("--ssh-password-env takes the NAME of an environment variable "
                           "(letters, digits, _); put the password in that variable, never on "
                           "the command line", EXIT_USAGE)
        if not os.environ.get(env):
            raise CliError(f"--ssh-password-env {env}: that environment variable is not set "
                           f"(export {env}=... first)", EXIT_USAGE)
