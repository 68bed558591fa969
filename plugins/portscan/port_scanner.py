"""``port_scanner``: the port scan to use when it does not matter how: ``syn_scanner``.

``syn_scanner`` already picks the best scan this process may run (SYN on raw sockets with
root or CAP_NET_RAW, else a connect scan), so the generic name is that module under a
name of its own, with the same options and outputs.
"""

from __future__ import annotations

from pentora_plugins.portscan.syn_scanner import SynScanner


class PortScanner(SynScanner):
    """TCP port scan: SYN when privileged, else connect (syn_scanner under a generic name)."""

    module_type = "port_scanner"
    description = "TCP port scan: SYN with root or CAP_NET_RAW, else connect (as syn_scanner)"
