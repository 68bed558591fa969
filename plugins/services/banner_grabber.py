"""``banner_grabber``: what each open TCP port says, passively and when probed.

Per open port: a passive read, then probes chosen by what the service said and by the
port number, then generic ones (HTTP, a TLS ClientHello), so that a web server on
8081 or SSH on 2222 is still caught; TLS is found on any port and the protocol inside
it probed through gevent.ssl. With ``race_probes`` (the default) the probes start on
connections of their own ``race_delay`` into the passive wait instead of after it;
a service that speaks first gets the same banners either way. The conversation is in
``_grab``, the probe catalog (``data/probes.yaml``, or the file named by ``catalog``) in
``_probes``.

Output: ``banners``, a ``Banner(host, port, protocol, tls, probe, data)`` per answer,
each emitted as soon as it is read. ``probe`` names what drew the answer: ``passive``,
a catalog probe, or ``tls_handshake`` (``key=value`` lines: TLS version, cipher,
certificate subject, issuer, validity, subject alternative names, SHA-256).

``data`` is text decoded as **latin-1**: byte N of the wire is code point U+00NN, so
the text holds every byte unchanged (``data.encode("latin-1")`` gives them back) and a
fingerprint regex matches byte 0xNN with ``\\xNN``. Nothing is stripped; a banner is
only ever cut by the byte cap. ``tls`` is true for answers read through TLS.

Input: ``open_ports`` (``Port`` records, or mappings with host, port, protocol and
state); only TCP ports in state ``open`` are grabbed. Host names for SNI come from a
``hostname`` on the item or from ``discovered_hosts``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import voluptuous as vol
from pentora_plugins.kit.inputs import hostnames, per_item, publish
from pentora_plugins.kit.net.grab import GrabOptions, PortGrab
from pentora_plugins.kit.probes import BUILTIN, CatalogError, load_catalog
from pentora_plugins.kit.records import Banner, Port
from voluptuous import Optional

from pentora import Module, ModuleError, NodeContext
from pentora.schema import Bool, Duration, Nullable, PositiveInt, StrList


def _catalog(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise vol.Invalid(f"expected 'builtin' or the path of a probe catalog, got {value!r}")
    return value


_catalog.__name__ = "builtin | PATH"


class BannerGrabber(Module):
    """Banners of open TCP ports: passive read, protocol probes, TLS on any port."""

    module_type = "banner_grabber"
    description = "read and probe each open TCP port for its banner (TLS detected on any port)"
    requires = ("open_ports",)
    produces = ("banners",)
    config_schema = {
        Optional("connect_timeout", default="2s", description="wait for each TCP connect"):
            Duration(min=0.001),
        Optional("read_timeout", default="2s",
                 description="wait for the first byte of an answer to a probe (and a TLS handshake)"):
            Duration(min=0.001),
        Optional("passive_timeout", default="1.5s",
                 description="wait for a service to speak first, before any probe"):
            Duration(min=0),
        Optional("short_passive_timeout", default="300ms",
                 description="passive wait on ports hinted only for client-first protocols (80, 6379...)"):
            Duration(min=0),
        Optional("idle_timeout", default="300ms",
                 description="once an answer has started, stop reading when quiet this long"):
            Duration(min=0.001),
        Optional("deadline", default="10s", description="total time for one port, all probes included"):
            Duration(min=0.001),
        # The name DAGs written for other scanners use; it bounds what a user waits for per port.
        Optional("timeout", description="another name for deadline; when given, it is the deadline"):
            Duration(min=0.001),
        Optional("max_bytes", default=8192, description="bytes read from one port, all reads together"):
            PositiveInt(),
        Optional("concurrency", default=None,
                 description="ports grabbed at once (default: the DAG's max_parallel_targets)"):
            Nullable(PositiveInt()),
        Optional("probes", default=[],
                 description="names of the catalog probes to use (default: all)"): StrList(),
        Optional("catalog", default=BUILTIN,
                 description="probe catalog: builtin or the path of a YAML file"): _catalog,
        Optional("tls", default=True,
                 description="shake hands with TLS ports and probe the protocol inside"): Bool(),
        Optional("race_probes", default=True,
                 description="send the probes on other connections during the passive wait"): Bool(),
        Optional("race_delay", default="100ms",
                 description="head start of the passive read over the raced probes"):
            Duration(min=0),
    }

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        try:
            catalog = load_catalog(config["catalog"]).select(config["probes"])
        except CatalogError as e:
            raise ModuleError(f"banner_grabber: {e}", ctx.node_id) from e
        opts = GrabOptions(**{k: config[k] for k in (
            "connect_timeout", "read_timeout", "passive_timeout", "short_passive_timeout",
            "idle_timeout", "max_bytes", "tls", "race_probes", "race_delay")},
                           deadline=config.get("timeout", config["deadline"]))
        names = hostnames(ctx)
        done = ctx.done_items()  # ports a killed run of this scan finished (resume)
        items = [(h, p, n or names.get(h)) for h, p, n in _open_tcp(ctx.get("open_ports"))
                 if _item(h, p) not in done]

        def grab(item: tuple[str, int, str | None]) -> list[Banner]:
            host, port, hostname = item
            found = PortGrab(host, port, hostname, catalog, opts, on_banner=ctx.emit).run()
            ctx.checkpoint(_item(host, port), found)
            return found

        banners: list[Banner] = ctx.restored_records()
        restored = len(banners)
        for found in per_item(ctx, grab, items, config["concurrency"]):
            banners += found
        silent = len(items) - len({(b.host, b.port) for b in banners[restored:]})
        ctx.log.info(f"banner_grabber: {len(banners)} banners from {len(items)} ports "
                     f"({silent} said nothing)")
        publish(ctx, "banners", banners)


def _item(host: str, port: int) -> str:
    """The checkpoint name of a port: ``host:port`` (``[v6]:port``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _open_tcp(items: Iterable[Any]) -> Iterator[tuple[str, int, str | None]]:
    """(host, port, hostname) of each open TCP port, once each, in input order."""
    seen: set[tuple[str, int]] = set()
    for item in items:
        if isinstance(item, Port):
            host, port, protocol, state, name = item.host, item.port, item.protocol, item.state, None
        elif isinstance(item, dict):
            host, port = item["host"], int(item["port"])
            protocol, state = item.get("protocol", "tcp"), item.get("state", "open")
            name = item.get("hostname")
        else:
            raise ModuleError(f"banner_grabber: open_ports holds {type(item).__name__} {item!r}; "
                              f"expected Port records or mappings with host and port")
        if protocol != "tcp" or state != "open" or (host, port) in seen:
            continue
        seen.add((host, port))
        yield host, port, name
