"""Listeners for port-scan tests and benchmarks, run as a script inside a namespace.

    python _listen.py --open 127.0.0.1:22 127.0.0.1:80 --stuck 127.0.0.1:7000

``--open`` ports accept and close every connection. ``--stuck`` ports listen with a
backlog of 0 whose queue this script fills itself, so the kernel drops every further
SYN: a port that never answers, made without a firewall. Prints ``ready`` once all
are listening, then serves until killed or until its stdin closes.
"""

from __future__ import annotations

import argparse
import select
import socket
import sys


def _address(text: str) -> tuple[int, tuple[str, int]]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    return (socket.AF_INET6 if ":" in host else socket.AF_INET), (host, int(port))


def _listen(spec: str, backlog: int) -> socket.socket:
    family, address = _address(spec)
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(address)
    s.listen(backlog)
    return s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--open", nargs="*", default=[])
    parser.add_argument("--stuck", nargs="*", default=[])
    args = parser.parse_args()
    serving = [_listen(spec, 4096) for spec in args.open]
    held = []
    for spec in args.stuck:
        s = _listen(spec, 0)
        family, address = _address(spec)
        # Linux queues backlog + 1 connections; after these every SYN is dropped.
        for _ in range(2):
            c = socket.socket(family, socket.SOCK_STREAM)
            c.setblocking(False)
            c.connect_ex(address)
            held.append(c)
        held.append(s)
    print("ready", flush=True)
    ep = select.epoll()
    by_fd = {s.fileno(): s for s in serving}
    for fd in by_fd:
        ep.register(fd, select.EPOLLIN)
    try:
        ep.register(sys.stdin.fileno(), select.EPOLLIN | select.EPOLLHUP)
    except OSError:
        pass  # stdin is not a pipe: serve until killed
    while True:
        for fd, _ in ep.poll():
            if fd == sys.stdin.fileno():
                return
            try:
                conn, _ = by_fd[fd].accept()
                conn.close()
            except OSError:
                pass


if __name__ == "__main__":
    main()
