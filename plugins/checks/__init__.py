"""Misconfiguration checks: ``http_checks``, ``service_checks``, ``ssh_checks``, ``tls_checks``;
the credentialed ``package_inventory`` and its ``--ssh-user``/``--ssh-key``/``--ssh-password-env``
options of ``pentora scan``."""

from __future__ import annotations

from typing import Any

from pentora import hookimpl

# Names this area's parts had as plugins of their own (``-p no:NAME`` says what they are now).
pentora_former_names = {"checks_http": "checks", "checks_services": "checks", "checks_ssh": "checks",
                        "checks_tls": "checks"}


@hookimpl
def pentora_register_modules(registry: Any) -> None:
    from pentora_plugins.checks.http_checks import HttpChecks
    from pentora_plugins.checks.package_inventory import PackageInventory
    from pentora_plugins.checks.service_checks import ServiceChecks
    from pentora_plugins.checks.ssh_checks import SshChecks
    from pentora_plugins.checks.tls_checks import TlsChecks
    for cls in (HttpChecks, PackageInventory, ServiceChecks, SshChecks, TlsChecks):
        registry.register(cls)
