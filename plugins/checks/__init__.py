"""Misconfiguration checks: ``http_checks``, ``service_checks``, ``ssh_checks``, ``tls_checks``;
the credentialed ``package_inventory`` and its ``--ssh-user``/``--ssh-key``/``--ssh-password-env``
options of ``pentora scan``.

Each misconfiguration finding is what the check saw the target do (a login accepted, an
algorithm or a TLS version offered, a header missing from the answer), not a flaw inferred
from a version string: method ``active``, quality 95 (``kit.quality``). ``ssh_checks``'
``PENTORA-SSH-PROTOCOL-1`` reads the protocol version of the SSH identification line, which
is the protocol the server will speak (RFC 4253, 5), not the version of its software.
"""

from __future__ import annotations

from typing import Any

from pentora import hookimpl

# Names this area's parts had as plugins of their own (``-p no:NAME`` says what they are now).
pentora_former_names = {"checks_http": "checks", "checks_services": "checks", "checks_ssh": "checks",
                        "checks_tls": "checks"}


@hookimpl
def pentora_register_modules(registry: Any) -> None:
    # Named, not imported: a module type's code is imported when a scan first uses it.
    registry.register("pentora_plugins.checks.http_checks:HttpChecks", name="http_checks")
    registry.register("pentora_plugins.checks.package_inventory:PackageInventory", name="package_inventory")
    registry.register("pentora_plugins.checks.service_checks:ServiceChecks", name="service_checks")
    registry.register("pentora_plugins.checks.ssh_checks:SshChecks", name="ssh_checks")
    registry.register("pentora_plugins.checks.tls_checks:TlsChecks", name="tls_checks")


# ``pentora scan`` option → the DAG var it sets (the profiles' package_inventory reads them).
SSH_OPTIONS = {"ssh_user": "--ssh-user", "ssh_key": "--ssh-key", "ssh_password_env": "--ssh-password-env"}


@hookimpl
def pentora_cli_commands(subparsers: Any, common: Any) -> None:
    scan = subparsers.choices.get("scan")
    if scan is None:
        return
    group = scan.add_argument_group(
        "credentialed checks", "log in to each SSH host to read its installed packages "
        "(package_inventory); off unless --ssh-user is given")
    group.add_argument("--ssh-user", dest="ssh_user", metavar="USER", help="the user to log in as")
    group.add_argument("--ssh-key", dest="ssh_key", metavar="FILE",
                       help="an unencrypted private key file (Ed25519, ECDSA, RSA)")
    group.add_argument("--ssh-password-env", dest="ssh_password_env", metavar="VAR",
                       help="the NAME of the environment variable holding the password "
                            "(never the password itself)")


@hookimpl
def pentora_cli_scan_vars(args: Any, dag: Any, resuming: bool) -> dict[str, Any] | None:
    given: dict[str, str] = {var: getattr(args, var) for var in SSH_OPTIONS
                             if getattr(args, var, None) is not None}
    if not given:
        return None  # the module type's code (paramiko's helpers, the distributions) not needed
    from pentora_plugins.checks.package_inventory import check_cli_credentials

    if resuming:
        return given  # refused, named: a resumed scan keeps the credentials it started with
    check_cli_credentials(given, dag, SSH_OPTIONS)
    return given
