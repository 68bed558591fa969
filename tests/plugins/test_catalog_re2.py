"""The built-in catalogs under RE2 give the results Python's re (with re.ASCII) gave: every fingerprint
rule, probe regex and web technology pattern is run by both engines on a corpus (the
labelled banners and pages of tests/data, the text and byte literals of the catalog tests,
and seeded variants of them) and must find the same groups at the same places.

Patterns rewritten for RE2 are compared with what they were (``*_BEFORE``): a look-ahead
after a pattern's last item became an item that consumes the character it looked at, so
for those (``CONSUMES``) the whole match may be up to two characters longer; every group
must still be the same. ``ftp_syst``'s selecting regex (whether the first line says
SMTP) is compared on whether it matches: the grabber reads nothing else of it."""

from __future__ import annotations

import ast
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from pentora_plugins.kit import linear_re
from pentora_plugins.kit.catalog import load_catalog
from pentora_plugins.kit.probes import builtin_catalog
from pentora_plugins.web._rules import KINDS, NAMED_KINDS
from pentora_plugins.web._rules import builtin_path as web_path

TESTS = Path(__file__).parent.parent
FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}

# The patterns as Python's re read them before RE2 (rule id / probe.field.n / tech.n).
FINGERPRINTS_BEFORE = {
    'ssh-openssh': r'\ASSH-(?P<proto>\d\.\d+)-OpenSSH_(?P<version>\d[\w.]*)(?: (?P<dist>Debian|Ubuntu|Raspbian)-[\w.~]*?(?:\+deb(?P<release>\d+)u\d+)?(?=\s|$)| (?P<bsd>FreeBSD|NetBSD)-\d+)?',  # noqa: E501
    'ssh-libssh': r'\ASSH-(?P<proto>\d\.\d+)-libssh(?:[_-](?P<version>\d[\d.]*))?(?![\w.])',
    'http-apache': r'^Server:[ \t]*Apache(?:/(?P<version>\d[\d.]*))?(?![\w-])(?: \((?P<dist>[\w .-]+?)\))?',
    'http-tomcat-page': r'\AHTTP/[\d.]+ \d{3}[\s\S]{0,8192}?<(?:h3|title)>Apache Tomcat/(?P<version>\d[\w.-]*)</(?:h3|title)>',  # noqa: E501
    'http-elasticsearch': r'^[ \t]*"number"[ \t]*:[ \t]*"(?P<version>\d[\w.-]*)",[^{}]{0,1200}\}[^{}]{0,20}"tagline"[ \t]*:[ \t]*"You Know, for Search"',  # noqa: E501
    'ftp-generic': r'\A220[ -][^\r\n]{0,200}?\bFTP\b(?!\.\w)',
    'postgresql-ssl-answer': r'\A[NS]\Z',
    'ldap-openldap': r'\A0(?:[\x00-\x7f]|\x81[\s\S]|\x82[\s\S]{2}|\x84[\s\S]{4})\x02\x01[\s\S]d[\s\S]{0,4000}?OpenLDAProotDSE',  # noqa: E501
    'ldap-active-directory': r'\A0(?:[\x00-\x7f]|\x81[\s\S]|\x82[\s\S]{2}|\x84[\s\S]{4})\x02\x01[\s\S]d[\s\S]{0,6000}?1\.2\.840\.113556\.1\.4\.800',  # noqa: E501
    'ldap-389ds': r'\A0(?:[\x00-\x7f]|\x81[\s\S]|\x82[\s\S]{2}|\x84[\s\S]{4})\x02\x01[\s\S]d[\s\S]{0,6000}?389-Directory/(?P<version>\d[\d.]*)',  # noqa: E501
    'smb-samba': r'\A\x00[\s\S]{3}[\xfe\xff]SMB[\s\S]{0,2000}?S\x00?a\x00?m\x00?b\x00?a\x00? \x00?(?P<version>\d[\d.\x00]{0,30})',  # noqa: E501
    'smb-windows-ntlmssp': r'\A\x00[\s\S]{3}\xfeSMB[\s\S]{0,1000}?NTLMSSP\x00\x02\x00\x00\x00[\s\S]{36}(?P<major>[\x06\x0a])(?P<minor>[\x00-\x03])(?P<build>(?!\x00\x00)[\s\S]{2})\x00\x00\x00\x0f',  # noqa: E501
    'amqp-rabbitmq': r'\A\x01\x00\x00[\s\S]{4}\x00\x0a\x00\x0a\x00\x09[\s\S]{0,1500}?\x07productS[\s\S]{4}RabbitMQ\x07versionS[\s\S]{4}(?P<version>\d[\d.]*)',  # noqa: E501
}
PROBES_BEFORE = {
    'ftp_syst.match.0': r'\A220[ -](?![^\r\n]{0,300}?SMTP)',
    'pg_sslrequest.expect.0': r'\A[NS]\Z',
    'pg_startup.match.0': r'\A[NS]\Z',
}
WEBAPPS_BEFORE = {
    'nginx.0': r'^nginx(?![\w-])(?:/(?P<version>\d[\d.]*))?',
    'apache-httpd.0': r'^Apache(?:/(?P<version>\d[\d.]*))?(?![\w-])',
    'joomla.1': r'content="Joomla!|<title>[^<]{0,80}Administration</title>[\s\S]{0,4000}joomla',
}
# A probe's match only says whether an answer selects it: its span is never read.
SELECTS_ONLY = {"ftp_syst.match.0"}
CONSUMES = {"ssh-openssh", "ssh-libssh", "http-apache", "ftp-generic", "nginx.0", "apache-httpd.0"}

# Texts at the edges of the rewritten patterns.
EDGES = [
    "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n",
    "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3x", "SSH-2.0-OpenSSH_9.2p1 Debian-2\x0b",
    "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6 ", "SSH-2.0-OpenSSH_9.6 FreeBSD-20240104",
    "SSH-2.0-libssh_0.9.6\r\n", "SSH-2.0-libssh_0.9.6a", "SSH-2.0-libssh-0.7.0", "SSH-2.0-libssh",
    "SSH-2.0-libsshX", "SSH-2.0-libssh_0.10.5.x", "SSH-2.0-libssh_0.8.", "SSH-2.0-libssh_1.2-",
    "HTTP/1.1 200 OK\r\nServer: Apache/2.4.62-x\r\n", "HTTP/1.1 200 OK\r\nServer: Apache/2.4.57 (Debian)\r\n",
    "HTTP/1.1 200 OK\r\nServer: Apache\r\n", "HTTP/1.1 200 OK\r\nServer: Apachex\r\n",
    "HTTP/1.1 200 OK\r\nServer: Apache/2.4 (Unix", "HTTP/1.1 200 OK\r\nServer: Apache", "Server: Apache-Coyote/1.1",  # noqa: E501
    "Server: Apache/2.4.6 (CentOS) OpenSSL/1.0.2k-fips", "Server: Apache/", "Server: Apache/x",
    "220 FTP.x", "220 FTP.", "220 FTP. ", "220 FTP", "220 my FTP server ready\r\n", "220 FTP.\r\n",
    "220-FTP.-", "220 ftp.example.org FTP server", "220 FTPS", "220 (vsFTPd 3.0.3)\r\n",
    "220 mail.example.org ESMTP Postfix (Debian/GNU)\r\n", "220 SMTP", "220 SMS\r\n", "220 SM\r\nSMTP",
    "220-SMSMTP", "220 SMT", "220 SSMTP", "220 SMTSMTP", "220 SMTX SMTPY", "220 x" + "y" * 290 + "SMTP",
    "220 ProFTPD Server (Debian) [::ffff:127.0.0.1]\r\n", "220 smtp ready", "220-\n",
    "N", "S", "N\n", "NS", "E", "", "\n",
    "nginx", "nginx/1.2", "nginx/abc", "nginx-x", "nginxx", "nginx/", "nginx 1", "NGINX/1.25.3",
    "Apache", "Apache/2.4.1", "Apache/2.4.1-x", "apache/2.4.1 (Ubuntu)", "Apachex", "Apache/",
]


def literals(path: Path) -> Iterator[str]:
    """The str and bytes constants of a test file, as text (bytes read as latin-1)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes) and len(node.value) > 2:
            yield node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value


def samples() -> list[str]:
    out = list(EDGES)
    banners = yaml.safe_load((TESTS / "data" / "banners" / "labelled.yaml").read_text())["banners"]
    out += [b["data"] for e in banners for b in e.get("banners") or [e]]
    pages = yaml.safe_load((TESTS / "data" / "webapps" / "samples.yaml").read_text())["samples"]
    for page in pages:
        for part in [page["response"], *(page.get("paths") or {}).values()]:
            out += [part.get("body", ""), *map(str, (part.get("headers") or {}).values()),
                    *part.get("cookies", [])]
    for name in ("test_fingerprint.py", "test_banners_catalog.py", "test_webapp.py"):
        out += literals(TESTS / "plugins" / name)
    return out


def variants(texts: list[str]) -> list[str]:
    """Seeded variants: cut short, case changed, followed by what look-aheads looked at."""
    rng = random.Random(5)
    tails = ["", "\n", "\r\n", "\x0b", " ", ".", ".a", "-", "a", "\x00", "\xff", ")", "\u00e9"]
    out = []
    for text in texts:
        if not text or len(text) > 20000:
            continue
        for _ in range(3):
            cut = rng.randint(1, len(text))
            out.append(text[:cut] + rng.choice(tails))
        out += [text + rng.choice(tails), text.swapcase()]
        noisy = list(text)
        for _ in range(max(1, len(text) // 50)):
            noisy[rng.randrange(len(noisy))] = rng.choice("\x00 \n\x0b.-aZ9\xff\u00e9")
        out.append("".join(noisy))
    return out


CORPUS = list(dict.fromkeys(t for t in samples() + variants(samples())))
STRIPPED = list(dict.fromkeys(t.strip() for t in CORPUS))
BYTES = [t.encode("latin-1") for t in CORPUS if all(ord(c) < 256 for c in t)]


def same(before: Any, after: Any, consumes: bool) -> bool:
    if before is None or after is None:
        return before is None and after is None
    if before.groups() != after.groups() or [before.span(g) for g in range(1, before.re.groups + 1)] != [
            after.span(g) for g in range(1, after.re.groups + 1)]:
        return False
    if consumes:
        return after.start() == before.start() and 0 <= after.end() - before.end() <= 2
    return before.span() == after.span()


def compare(key: str, before: re.Pattern[Any], after: Any, texts: list[Any],
            how: Callable[[Any], str]) -> list[str]:
    bad = []
    for text in texts:
        found = getattr(before, how(text))(text), getattr(after, how(text))(text)
        if key in SELECTS_ONLY and (found[0] is None) == (found[1] is None):
            continue
        if key in SELECTS_ONLY or not same(*found, key in CONSUMES):
            bad.append(f"{key}: {text[:100]!r}")
    return bad


def test_corpus_is_large_and_reaches_every_rewritten_pattern():
    assert len(CORPUS) > 2000 and len(BYTES) > 2000
    cat = load_catalog()
    for rule_id in FINGERPRINTS_BEFORE:
        assert any(cat.get(rule_id).regex.search(t) for t in CORPUS), rule_id


def test_every_fingerprint_rule_finds_what_python_re_found():
    bad = []
    for rule in load_catalog().rules:
        flags = re.ASCII
        for c in rule.regex.flags:
            flags |= FLAGS[c]
        before = re.compile(FINGERPRINTS_BEFORE.get(rule.id, rule.regex.pattern), flags)
        bad += compare(rule.id, before, rule.regex, CORPUS, lambda t: "search")
    assert bad == [], f"{len(bad)} differences, the first: {bad[:10]}"


def test_every_probe_regex_finds_what_python_re_found():
    bad = []
    for probe in builtin_catalog().probes:
        fields = [("match", p) for p in probe.match] + [("expect", p) for p in probe.expect]
        fields += [("read_until", probe.read_until)] if probe.read_until is not None else []
        seen: dict[str, int] = {}
        for field, pattern in fields:
            n = seen[field] = seen.get(field, -1) + 1
            key = f"{probe.name}.{field}.{n}"
            flags = 0
            for c in pattern.flags:
                flags |= FLAGS[c]
            text = PROBES_BEFORE.get(key, pattern.pattern.decode("latin-1")).encode("latin-1")
            how = "search" if field == "read_until" else "match"
            bad += compare(key, re.compile(text, flags), pattern, BYTES, lambda t, h=how: h)
    assert bad == [], f"{len(bad)} differences, the first: {bad[:10]}"


def test_every_web_pattern_finds_what_python_re_found():
    raw = yaml.safe_load(web_path().read_text(encoding="utf-8"))["technologies"]
    bad = []
    for tech in raw:
        for n, m in enumerate(tech["match"]):
            kind = next(k for k in KINDS if k in m)
            text = m.get("pattern") if kind in NAMED_KINDS else m[kind]
            if text is None:
                continue
            key = f"{tech['id']}.{n}"
            after = linear_re.compile(text, "i")
            # \\w \\d \\s are ASCII now, as in fingerprint rules (Python's read them as Unicode)
            before = re.compile(WEBAPPS_BEFORE.get(key, text), re.IGNORECASE | re.ASCII)
            how = "fullmatch" if kind == "cookie" else "search"
            # http_scanner strips header values and normalises titles: no final newline
            # for a Python '$' to match before (RE2's '$' is the very end of the text)
            texts = STRIPPED if kind in ("header", "title") else CORPUS
            bad += compare(key, before, after, texts, lambda t, h=how: h)
    assert bad == [], f"{len(bad)} differences, the first: {bad[:10]}"
