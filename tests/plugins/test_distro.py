"""kit.distro: the distribution build behind a banner, from real banners, from the real
daemons of this machine (their Debian package versions are the ground truth), the data
file's checks, and hostile banners."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from dataclasses import asdict
from pathlib import Path

import pytest
from pentora_plugins.kit import distro
from pentora_plugins.kit.distro import DISTRO_ONLY, EXACT, NONE, DistroDataError, recognise

from ..integration import daemons

# (product, version as a fingerprint names it, banner text) → the fields expected.
BANNERS = [
    (("OpenSSH", "9.2p1", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"),
     dict(certainty=EXACT, distribution="debian", release="12", codename="bookworm",
          source_package="openssh", epoch=1, package_version="1:9.2p1-2+deb12u3")),
    (("OpenSSH", "8.4p1", "SSH-2.0-OpenSSH_8.4p1 Debian-5+deb11u3"),
     dict(certainty=EXACT, distribution="debian", release="11", codename="bullseye",
          package_version="1:8.4p1-5+deb11u3")),
    (("OpenSSH", "7.9p1", "SSH-2.0-OpenSSH_7.9p1 Debian-10+deb10u2"),
     dict(certainty=EXACT, release="10", codename="buster", package_version="1:7.9p1-10+deb10u2")),
    # without +debNNuM (the release's first upload): the release from the upstream table
    (("OpenSSH", "9.2p1", "SSH-2.0-OpenSSH_9.2p1 Debian-2"),
     dict(certainty=EXACT, release="12", package_version="1:9.2p1-2")),
    (("OpenSSH", "8.9p1", "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10"),
     dict(certainty=EXACT, distribution="ubuntu", release="22.04", codename="jammy",
          source_package="openssh", epoch=1, package_version="1:8.9p1-3ubuntu0.10")),
    (("OpenSSH", "8.2p1", "SSH-2.0-OpenSSH_8.2p1 Ubuntu-4ubuntu0.11"),
     dict(certainty=EXACT, distribution="ubuntu", release="20.04", codename="focal",
          package_version="1:8.2p1-4ubuntu0.11")),
    (("OpenSSH", "9.2p1", "SSH-2.0-OpenSSH_9.2p1 Raspbian-2+deb12u2"),
     dict(certainty=EXACT, distribution="raspbian", release="12", codename="bookworm",
          source_package="openssh", package_version="1:9.2p1-2+deb12u2")),
    (("OpenSSH", "7.4p1", "OpenSSH_7.4p1 Debian-10+deb9u7, OpenSSL 1.0.2u  20 Dec 2019"),
     dict(certainty=EXACT, release="9", codename="stretch", package_version="1:7.4p1-10+deb9u7")),
    (("OpenSSH", "9.6", "SSH-2.0-OpenSSH_9.6 FreeBSD-20240104"),
     dict(certainty=DISTRO_ONLY, distribution="freebsd", package_version=None, source_package=None)),
    # RHEL's sshd says nothing of its distribution
    (("OpenSSH", "8.0", "SSH-2.0-OpenSSH_8.0"), dict(certainty=NONE, distribution=None)),
    (("Apache httpd", "2.4.57", "HTTP/1.1 200 OK\r\nServer: Apache/2.4.57 (Debian)\r\n\r\n"),
     dict(certainty=DISTRO_ONLY, distribution="debian", release=None, source_package="apache2",
          epoch=0, package_version=None)),
    (("Apache httpd", "2.4.52", "Server: Apache/2.4.52 (Ubuntu)"),
     dict(certainty=DISTRO_ONLY, distribution="ubuntu", release="22.04", codename="jammy",
          source_package="apache2")),
    (("Apache httpd", "2.4.37", "Server: Apache/2.4.37 (Red Hat Enterprise Linux) OpenSSL/1.1.1k"),
     dict(certainty=DISTRO_ONLY, distribution="rhel", release="8", source_package="httpd")),
    (("Apache httpd", "2.4.6", "Server: Apache/2.4.6 (CentOS) OpenSSL/1.0.2k-fips PHP/5.4.16"),
     dict(certainty=DISTRO_ONLY, distribution="centos", release="7", source_package="httpd")),
    (("Apache httpd", "2.4.51", "Server: Apache/2.4.51 (Rocky Linux) OpenSSL/3.0.1"),
     dict(certainty=DISTRO_ONLY, distribution="rocky", release=None, source_package="httpd")),
    (("Apache httpd", "2.4.62", "Server: Apache/2.4.62 (Unix) OpenSSL/3.0.13"),
     dict(certainty=NONE, distribution=None, source_package=None)),
    (("nginx", "1.22.1", "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n"),
     dict(certainty=NONE, distribution=None)),
    (("nginx", "1.24.0", "Server: nginx/1.24.0 (Ubuntu)"),
     dict(certainty=DISTRO_ONLY, distribution="ubuntu", release="24.04", codename="noble",
          source_package="nginx")),
    (("PHP", "8.2.7", "X-Powered-By: PHP/8.2.7-1~deb12u1"),
     dict(certainty=EXACT, distribution="debian", release="12", source_package="php8.2",
          package_version="8.2.7-1~deb12u1")),
    (("PHP", "7.4.3", "X-Powered-By: PHP/7.4.3-4ubuntu2.19"),
     dict(certainty=EXACT, distribution="ubuntu", release="20.04", codename="focal",
          source_package="php7.4", package_version="7.4.3-4ubuntu2.19")),
    (("PHP", "8.3.6", "X-Powered-By: PHP/8.3.6-1+ubuntu22.04.1+deb.sury.org+1"),
     dict(certainty=EXACT, distribution="ubuntu", release="22.04", repository="deb.sury.org")),
    (("PHP", "8.2.20", "X-Powered-By: PHP/8.2.20"), dict(certainty=NONE)),
    (("Exim", "4.96", "220 mail.example.org ESMTP Exim 4.96 #2 Mon, 01 Jan 2024 10:00:00 +0000"),
     dict(certainty=NONE, distribution=None)),
    (("Exim", "4.93", "220 mail.example.org ESMTP Exim 4.93 Ubuntu Mon, 01 Jan 2024 10:00:00 +0000"),
     dict(certainty=DISTRO_ONLY, distribution="ubuntu", source_package="exim4")),
    (("Exim", "4.92", "220 mx.example.org ESMTP Exim 4.92 #3 Debian Tue, 02 Jan 2024 11:00:00 +0100"),
     dict(certainty=DISTRO_ONLY, distribution="debian", source_package="exim4")),
    (("Postfix", None, "220 mx.example.org ESMTP Postfix (Debian/GNU)"),
     dict(certainty=DISTRO_ONLY, distribution="debian", source_package="postfix")),
    (("Postfix", None, "220 mx.example.org ESMTP Postfix (Ubuntu)"),
     dict(certainty=DISTRO_ONLY, distribution="ubuntu")),
    (("Postfix", None, "220 mx.example.org ESMTP Postfix"), dict(certainty=NONE)),
    (("ProFTPD", "1.3.5e", "220 ProFTPD 1.3.5e Server (Debian) [::ffff:10.0.0.1]"),
     dict(certainty=DISTRO_ONLY, distribution="debian", source_package="proftpd-dfsg")),
    (("ProFTPD", "1.3.6", "220 ProFTPD 1.3.6 Server (ProFTPD Default Installation) [10.0.0.1]"),
     dict(certainty=NONE, distribution=None)),
    (("vsftpd", "3.0.3", "220 (vsFTPd 3.0.3)\r\n"), dict(certainty=NONE)),
    (("Redis", "7.0.15", "$5000\r\n# Server\r\nredis_version:7.0.15\r\nos:Linux 6.1.0-18-amd64 x86_64\r\n"),
     dict(certainty=NONE, distribution=None)),
    (("Microsoft IIS", "10.0", "Server: Microsoft-IIS/10.0"), dict(certainty=NONE, source_package=None)),
]


@pytest.mark.parametrize("args,expected", BANNERS, ids=[a[2][:48] for a, _ in BANNERS])
def test_real_banners(args: tuple[str, str | None, str], expected: dict[str, object]) -> None:
    build = recognise(*args)
    got = {key: getattr(build, key) for key in expected}
    assert got == expected, build.evidence
    assert build.evidence  # every answer says why


def test_the_example_of_writing_plugins() -> None:
    build = recognise("OpenSSH", "9.2p1", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3")
    assert (build.package_version, build.release, build.codename, build.certainty) == \
        ("1:9.2p1-2+deb12u3", "12", "bookworm", "exact-revision")
    doc = (Path(__file__).parents[2] / "docs" / "writing-plugins.md").read_text(encoding="utf-8")
    assert "# ('1:9.2p1-2+deb12u3', '12', 'bookworm', 'exact-revision')" in doc


def test_os_hints_and_other_services_name_the_distribution_without_a_revision() -> None:
    hinted = recognise("nginx", "1.22.1", "Server: nginx/1.22.1",
                       {"distribution": "Debian", "release": "12"})
    assert (hinted.certainty, hinted.distribution, hinted.release, hinted.codename) == \
        (DISTRO_ONLY, "debian", "12", "bookworm")
    assert hinted.package_version is None and not hinted.inferred
    builds = distro.recognise_host([
        ("OpenSSH", "9.2p1", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", None),
        ("nginx", "1.22.1", "Server: nginx/1.22.1", None),
        ("Redis", "7.0.15", "", None),
        ("Apache httpd", "2.4.62", "Server: Apache/2.4.62 (Unix)", None),
    ])
    ssh, nginx, redis, apache = builds
    assert ssh.certainty == EXACT and not ssh.inferred
    assert (nginx.certainty, nginx.distribution, nginx.release, nginx.source_package, nginx.inferred) \
        == (DISTRO_ONLY, "debian", "12", "nginx", True)
    assert (redis.certainty, redis.epoch, redis.package_version) == (DISTRO_ONLY, 5, None)
    # "(Unix)": built from source, whatever the rest of the host runs
    assert apache.certainty == NONE and apache.distribution is None
    # RHEL's bare OpenSSH_8.0 takes the distribution of the host's Apache
    el = distro.recognise_host([("OpenSSH", "8.0", "SSH-2.0-OpenSSH_8.0", None),
                                ("Apache httpd", "2.4.37", "Server: Apache/2.4.37 (Rocky Linux)", None)])
    assert (el[0].distribution, el[0].release, el[0].source_package, el[0].certainty) == \
        ("rocky", "8", "openssh", DISTRO_ONLY)


def test_services_that_disagree_name_no_host_distribution() -> None:
    builds = distro.recognise_host([
        ("OpenSSH", "9.2p1", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", None),
        ("Apache httpd", "2.4.52", "Server: Apache/2.4.52 (Ubuntu)", None),
        ("nginx", "1.22.1", "Server: nginx/1.22.1", None),
    ])
    assert builds[2].certainty == NONE and builds[2].distribution is None
    assert distro.host_os(builds) is None


# -- the real daemons of this machine -----------------------------------------------------------


def _dpkg(field: str, package: str) -> str:
    done = subprocess.run(["dpkg-query", "-W", f"-f=${{{field}}}", package], capture_output=True,
                          text=True, check=True)
    return done.stdout.strip()


def _source(package: str) -> str:
    """The source package of an installed binary package ('vsftpd (3.0.3-13)' → 'vsftpd')."""
    return (_dpkg("Source", package) or package).split(" ")[0]


def _talk(port: int, send: bytes, until: bytes) -> str:
    with socket.create_connection((daemons.HOST, port), timeout=10) as s:
        if send:
            s.sendall(send)
        data = b""
        while until not in data and len(data) < 65536:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.decode("latin-1")


def _os_release() -> dict[str, str]:
    text = Path("/etc/os-release").read_text()
    return dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', text, re.M))


def test_real_daemons_map_to_their_installed_package_versions() -> None:
    if shutil.which("dpkg-query") is None:
        pytest.skip("no dpkg-query: the ground truth is the Debian package database")
    reason = daemons.ensure_packages()
    if reason:
        pytest.skip(f"real daemons unavailable: {reason}")
    os_release = _os_release()
    if os_release.get("ID") != "debian":
        pytest.skip(f"this machine runs {os_release.get('ID')!r}, the test expects Debian's packages")
    with daemons.sshd() as ssh, daemons.nginx() as web, daemons.redis() as kv, daemons.vsftpd() as ftp:
        greeting = _talk(ssh.port, b"", b"\n")
        header = _talk(web.port, b"HEAD / HTTP/1.0\r\nHost: localhost\r\n\r\n", b"\r\n\r\n")
        info = _talk(kv.port, b"INFO server\r\n", b"\r\n\r\n")
        ftp_greeting = _talk(ftp.port, b"", b"\n")
        services = [("OpenSSH", ssh.upstream_version, greeting, None),
                    ("nginx", web.upstream_version, header, None),
                    ("Redis", kv.upstream_version, info, None),
                    ("vsftpd", ftp.upstream_version, ftp_greeting, None)]
        daemon_list = [ssh, web, kv, ftp]
        print("banners:", [s[2].splitlines()[0] for s in services])
    alone = [recognise(*s) for s in services]
    # sshd's banner carries the revision: exactly the version dpkg reports
    assert alone[0].certainty == EXACT, alone[0].evidence
    assert alone[0].package_version == _dpkg("Version", "openssh-server")
    assert alone[0].source_package == _source("openssh-server")
    assert (alone[0].release, alone[0].codename) == (os_release["VERSION_ID"],
                                                     os_release.get("VERSION_CODENAME"))
    # nginx, Redis and vsftpd show no distribution on their own …
    assert [b.certainty for b in alone[1:]] == [NONE, NONE, NONE], [b.evidence for b in alone]
    # … and take sshd's with the host, with the source package and epoch dpkg knows
    for build, daemon in zip(distro.recognise_host(services)[1:], daemon_list[1:], strict=True):
        installed = daemon.package_version
        assert (build.certainty, build.distribution, build.release) == \
            (DISTRO_ONLY, "debian", os_release["VERSION_ID"]), build
        assert build.source_package == _source(daemon.package), build
        assert build.epoch == (int(installed.split(":")[0]) if ":" in installed else 0), build
        assert build.upstream_version == daemon.upstream_version


# Debian's binary package of each product: apt's record of it is the ground truth of the
# data file's source package names and epochs.
DEBIAN_PACKAGES = {
    "OpenSSH": "openssh-server", "Apache httpd": "apache2", "nginx": "nginx", "PHP": "php8.2",
    "Exim": "exim4-daemon-light", "Postfix": "postfix", "ProFTPD": "proftpd-core",
    "vsftpd": "vsftpd", "Redis": "redis-server", "OpenSSL": "openssl",
    "PostgreSQL": "postgresql-15",
}


@pytest.mark.parametrize("product,package", DEBIAN_PACKAGES.items())
def test_debian_source_names_and_epochs_are_those_of_apt(product: str, package: str) -> None:
    if _os_release().get("ID") != "debian" or shutil.which("apt-cache") is None:
        pytest.skip("apt's records of Debian's packages are the ground truth: not a Debian machine")
    done = subprocess.run(["apt-cache", "show", "--no-all-versions", package], capture_output=True,
                          text=True)
    fields = dict(re.findall(r"^(Version|Source|Package): (.*)$", done.stdout, re.M))
    if done.returncode != 0 or "Version" not in fields:
        pytest.skip(f"apt knows no {package} here (apt-get update not run?): {done.stderr.strip()[:200]}")
    version = fields["Version"]
    upstream = daemons.upstream_version(version)
    build = recognise(product, upstream, None, {"distribution": "Debian"})
    assert build.source_package == fields.get("Source", package).split(" ")[0]
    assert build.epoch == (int(version.split(":")[0]) if ":" in version else 0)


# -- the data file ---------------------------------------------------------------------------------


def test_builtin_data_loads_and_every_table_names_known_releases() -> None:
    data = distro.load_data()
    assert {"debian", "ubuntu", "rhel", "alpine", "rocky", "alma"} <= set(data.distributions)
    assert data.package("openssh") is data.package("OpenSSH")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "distro.yaml"
    path.write_text(text)
    return path


GOOD_DIST = "distributions:\n  - {id: debian, tokens: [Debian], releases: {'12': bookworm}}\n"
BROKEN = [
    ("packages:\n  - {id: x, products: [X], builds: {}}\n", "expected a mapping with 'distributions:'"),
    (GOOD_DIST + "packages:\n  - {id: x, products: [X], builds: {debain: {source: x, epoch: 0}}}\n",
     "package 'x' (#1): field 'builds': 'debain' is not a distribution"),
    (GOOD_DIST + "packages:\n  - {id: x, products: [X], builds: {debian: {source: x, epoch: -1}}}\n",
     "package 'x' (#1): field 'builds'"),
    (GOOD_DIST + "packages:\n  - {id: x, products: [X], builds: {debian: {source: x, epoch: 0}},"
                 " releases: {debian: {'1.0': '13'}}}\n",
     "field 'releases.debian.1.0': release '13' is not listed under distribution 'debian'"),
    (GOOD_DIST + "packages:\n  - {id: x, product: [X], builds: {}}\n",
     "unknown field 'product'"),
    (GOOD_DIST + "packages:\n  - {id: x, products: [X], builds: {debian: {source: 'x{patch}', epoch: 0}}}\n",
     "only {major} and {minor} may stand in 'x{patch}'"),
    (GOOD_DIST + "packages:\n  - {id: x, products: [X], builds: {}}\n"
                 "  - {id: y, products: [x], builds: {}}\n",
     "product 'x' is given by both 'x' and 'y'"),
    ("distributions:\n  - {id: raspbian, tokens: [Raspbian], packages: debian}\npackages: []\n",
     "field 'packages': 'debian' is no distribution of this file"),
    ("distributions: [\npackages: []\n", "distro.yaml:3: invalid YAML"),
]


@pytest.mark.parametrize("text,message", BROKEN)
def test_a_broken_data_file_is_named_with_its_entry_and_field(tmp_path: Path, text: str,
                                                              message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(DistroDataError) as e:
        distro.load_data(path)
    assert str(path) in str(e.value)
    assert message in str(e.value)


def test_a_missing_data_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DistroDataError, match="missing.yaml"):
        distro.load_data(tmp_path / "missing.yaml")


# -- hostile banners ----------------------------------------------------------------------------------

_SAFE = re.compile(r"[0-9A-Za-z.+~:_-]*")


def _fields_are_clean(build: distro.DistroBuild) -> None:
    for key in ("upstream_version", "revision", "package_version", "release", "source_package"):
        value = getattr(build, key)
        assert value is None or (len(value) <= 140 and _SAFE.fullmatch(value)), (key, value)
    assert len(build.evidence) <= 200


HOSTILE = [
    ("OpenSSH", "9.2p1", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3;rm -rf /"),
    ("OpenSSH", "9.2p1", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3$(reboot)"),
    ("OpenSSH", "9.2p1", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\x1b[31m"),
    ("OpenSSH", "9.2p1", "SSH-2.0-OpenSSH_9.2p1 Debian-" + "9" * 5000),
    ("OpenSSH", "9.2p1;id", "SSH-2.0-OpenSSH_9.2p1;id Debian-2+deb12u3"),
    ("OpenSSH", "9.2p1", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\x00evil"),
    ("PHP", "8.2.7", "X-Powered-By: PHP/8.2.7-1~deb12u1<script>"),
    ("Apache httpd", "2.4.57", "Server: Apache/2.4.57 (" + "Debian " * 2000 + ")"),
    ("Apache httpd", "2.4.57", "Server: Apache/2.4.57 (Debian\r\nX: y)"),
    ("nginx", "1.22.1", "Server: nginx/1.22.1 (" + "(" * 100000),
    ("Postfix", None, "220 " + "a" * 100000 + " ESMTP Postfix (Debian/GNU)"),
    ("OpenSSH", "9" * 200, "SSH-2.0-OpenSSH_" + "9" * 200 + " Debian-2+deb12u3"),
    ("x" * 100000, "1", "\xff\ud800" * 1000),
]


@pytest.mark.parametrize("args", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_banners_give_no_version_outside_the_version_alphabet(
        args: tuple[str, str | None, str]) -> None:
    build = recognise(*args)
    _fields_are_clean(build)
    assert build.certainty != EXACT or build.package_version, asdict(build)


def test_a_fake_suffix_gives_no_revision_but_the_word_still_names_the_distribution() -> None:
    build = recognise("OpenSSH", "9.2p1", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3;rm -rf /")
    assert (build.certainty, build.distribution, build.revision, build.package_version) == \
        (DISTRO_ONLY, "debian", None, None)
    assert ";" not in build.evidence


def test_evidence_past_the_text_bound_is_not_read() -> None:
    text = ("Server: nginx/1.22.1\r\n" + "X: " + "a" * distro.MAX_TEXT
            + "\r\nServer: nginx/1.24.0 (Ubuntu)\r\n")
    assert recognise("nginx", "1.22.1", text).certainty == NONE
