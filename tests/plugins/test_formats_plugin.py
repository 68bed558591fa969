"""Output formats are registry records: a plugin adds one the way the built-in ones are added.

The plugin here is a hooks file (``--hooks``), which goes through the same
``pentora_register_output_formats`` call as an installed package's entry point.
"""

from __future__ import annotations

from pathlib import Path

from pentora import Orchestrator
from pentora.cli import resolve_outputs

from ._formats_scan import pentora

PLUGIN = '''
from pentora import OutputFormat, hookimpl


class HostPorts:
    """host:port, one open port a line."""

    def __init__(self, target):
        self.path, self.lines = target, []

    def record(self, kind, record):
        data = record if isinstance(record, dict) else record.to_dict()
        if kind == "port":
            self.lines.append(f"{data['host']}:{data['port']}")

    def close(self, result):
        with open(self.path, "w") as f:
            f.write("\\n".join(sorted(self.lines)) + "\\n")


@hookimpl
def pentora_register_output_formats(registry):
    registry.register_output_format(OutputFormat("hostports", "host:port lines", open=HostPorts,
                                                 extensions=(".hp",)))
'''

CLASH = '''
from pentora import OutputFormat, hookimpl


@hookimpl
def pentora_register_output_formats(registry):
    registry.register_output_format(OutputFormat("html", "mine", open=print, extensions=(".x",)))
'''


def test_builtin_formats_are_registered_with_their_extensions():
    registry = Orchestrator().registry
    assert {"jsonl", "json", "csv", "md", "xml", "html"} <= set(registry.output_formats)
    assert registry.output_formats["html"].provider == "output"
    files = ["a.jsonl", "b.JSON", "c.csv", "d.md", "e.xml", "f.html", "g.htm", "h.markdown"]
    assert [name for name, _ in resolve_outputs(registry, files, None)] == [
        "jsonl", "json", "csv", "md", "xml", "html", "html", "md"]
    files = ["i.nmap", "j.txt", "k.gnmap", "xml:x.txt", "md:y.out", "a:b.json", "-"]
    assert resolve_outputs(registry, files, "csv") == [
        ("nmap", "i.nmap"), ("nmap", "j.txt"), ("gnmap", "k.gnmap"), ("xml", "x.txt"), ("md", "y.out"),
        ("json", "a:b.json"), ("csv", "-")]  # a: is no format's name: part of the path
    assert resolve_outputs(registry, ["-"], None) == [("jsonl", "-")]


def test_a_plugin_format_is_used_by_scan_and_by_report(tcp_server, tmp_path: Path):
    server = tcp_server(banner=b"SSH-2.0-OpenSSH_9.2p1\r\n")
    plugin = tmp_path / "hostports.py"
    plugin.write_text(PLUGIN)
    proc = pentora("scan", "--targets", "127.0.0.1", "-p", str(server.port), "--profile", "port-scan",
                   "--hooks", str(plugin), "-o", str(tmp_path / "out.hp"), "-o", str(tmp_path / "out.jsonl"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.hp").read_text() == f"127.0.0.1:{server.port}\n"
    proc = pentora("report", str(tmp_path / "out.jsonl"), "--hooks", str(plugin),
                   "-o", str(tmp_path / "again.hp"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "again.hp").read_text() == f"127.0.0.1:{server.port}\n"


def test_a_plugin_taking_a_builtin_format_name_fails_naming_both(tmp_path: Path):
    plugin = tmp_path / "clash.py"
    plugin.write_text(CLASH)
    proc = pentora("report", "nothing.jsonl", "--hooks", str(plugin), "--format", "md")
    assert proc.returncode == 1
    assert "output format 'html' registered twice: by plugin 'hooks:" in proc.stderr
    assert "clash.py' and by plugin 'output'" in proc.stderr
    assert "Traceback" not in proc.stderr
