"""Version order for real-world (upstream) version strings.

``version_key(text)`` maps a version to a tuple that Python compares in the order a
security advisory means: ``9.2p1 < 9.8p1``, ``1.3.2rc3 < 1.3.2 < 1.3.2a``,
``2.4.9 < 2.4.49 < 2.4.71``, ``10.11.19-MariaDB`` = ``10.11.19``. The key is built from
the *upstream* part only: an epoch (``1:``), a Debian or Ubuntu package revision
(``-9+deb12u1``, ``-0ubuntu0.22.04.1``, ``~deb12u10``) and a product tag (``-MariaDB``)
are not part of it, so the order is that of the upstream releases.

Tokens are runs of digits (compared as numbers) and of letters. A letter run is a
pre-release (``alpha``, ``beta``, ``rc``, ``pre``, ``dev``, or ``a``/``b`` followed by a
number) ranking below the release, or else a post-release suffix (OpenSSH's ``p1``,
ProFTPD's ``1.3.5b``) ranking above it. Every key ends with an end-of-version marker that
sorts below any further token, which keeps plain dotted versions in tuple order
(``1.2 < 1.2.0 < 1.2.1``) and pre-releases below their release.

Which distribution built a service, and its package's own version order, are
``kit.distro`` and ``kit.distver``'s.
"""

from __future__ import annotations

import functools
import re

Token = tuple[int, int, str]
VersionKey = tuple[Token, ...]

# Token classes, in order: pre-release < end of version < number < post-release letters.
_PRE, _END, _NUM, _POST = 0, 1, 2, 3
END: Token = (_END, 0, "")
_PRE_WORDS = {"dev": 0, "snapshot": 0, "alpha": 1, "a": 1, "beta": 2, "b": 2, "pre": 3,
              "preview": 3, "rc": 4, "cr": 4}
_TOKEN = re.compile(r"\d+|[A-Za-z]+")
_EPOCH = re.compile(r"^\s*\d+:(?=\d)")
# The upstream version: digits first, then dotted/underscored alphanumerics (``9.2p1``,
# ``1.3.2rc3``), optionally a pre-release after a dash (``2.4.0-beta2``). What follows (a
# package revision, a product tag, a distribution name) is not part of it.
_UPSTREAM = re.compile(r"v?(\d[0-9A-Za-z]*(?:[._][0-9A-Za-z]+)*"
                       r"(?:-(?:alpha|beta|rc|pre|preview|dev)[0-9A-Za-z.]*)?)", re.I)

def upstream(text: str) -> str:
    """The upstream release named by ``text``: ``1:9.2p1-2+deb12u3`` → ``9.2p1``."""
    text = _EPOCH.sub("", text.strip())
    m = _UPSTREAM.match(text)
    return m.group(1) if m else text


@functools.lru_cache(maxsize=65536)
def version_key(text: str) -> VersionKey:
    """A tuple ordering versions as releases are ordered (see the module docstring)."""
    tokens: list[Token] = []
    words = _TOKEN.findall(upstream(text))
    for i, word in enumerate(words):
        if word.isdigit():
            # magnitude, then digits: numeric order without int(), which refuses more than
            # 4,300 digits (and the banner that a version comes from is the target's to choose)
            digits = word.lstrip("0")
            tokens.append((_NUM, len(digits), digits))
            continue
        low = word.lower()
        rank = _PRE_WORDS.get(low)
        followed_by_number = i + 1 < len(words) and words[i + 1].isdigit()
        if rank is not None and (len(low) > 1 or followed_by_number):
            tokens.append((_PRE, rank, low))
        else:
            tokens.append((_POST, 0, low))
    tokens.append(END)
    return tuple(tokens)


def same_release(key: VersionKey, base: VersionKey) -> bool:
    """Whether ``key`` is a portable build of release ``base`` (``9.2p1`` of ``9.2``).

    NVD writes OpenSSH versions without the ``p1`` (``openssh:9.2:p1``), so a range
    "through 9.2" means 9.2p1 too, and "after 9.2" does not.
    """
    n = len(base) - 1
    return (len(key) == n + 3 and key[:n] == base[:n] and key[n] == (_POST, 0, "p")
            and key[n + 1][0] == _NUM and key[n + 2] == END)


# above every version key: the upper bound of a range without one
INFINITY: VersionKey = ((_POST + 1, 0, ""),)


def upper_key(end: VersionKey | None, inclusive: bool) -> VersionKey:
    """A key at or above every version a range ending at ``end`` contains (portable
    releases of an inclusive bound included): what an index may prune with."""
    if end is None:
        return INFINITY
    if not inclusive:
        return end
    return (*end[:-1], (_POST, 0, "p"), INFINITY[0])


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as version ``a`` is older than, the same release as, or newer than ``b``."""
    ka, kb = version_key(a), version_key(b)
    return (ka > kb) - (ka < kb)


def is_version(text: str | None) -> bool:
    """Whether ``text`` names a release (starts with a digit after an optional ``v``)."""
    return bool(text) and bool(_UPSTREAM.match(_EPOCH.sub("", str(text).strip())))
