"""What a whole-process SYN scan of 127.0.0.1's 65,535 ports cannot go below on this
machine, measured with pentora's own parts; run as root inside the benchmark's namespace.

Prints one JSON object (seconds):

* ``startup``: a Python process that imports what every scanning command needs before
  its first probe (loguru, gevent, patched), and exits: best of 5.
* ``send``: one sending process (as the SYN scanner has on 2 cores) writes the 65,535
  prebuilt SYNs with sendmmsg (``kit.net.rawsend.BatchSender``); the kernel answers each
  with a RST inside that same system call, as loopback does. Nobody reads the replies.
* ``receive``: the parent's CPU time to read those 65,535 RSTs (``BatchReceiver``) and
  check each against its keyed hash (``ReplyMatcher.matches``), while the sender runs.

The scan cannot end before start-up + the longer of sending and receiving (they run on
the two cores at once); the benchmark prints that floor over nmap's time.
"""

from __future__ import annotations

import json
import mmap
import os
import socket
import subprocess
import sys
import time

from pentora_plugins.kit.net.rawrecv import BatchReceiver, open_raw_socket
from pentora_plugins.kit.net.rawsend import BatchSender, SendResult, open_send_socket
from pentora_plugins.kit.net.rawtcp import SeqHasher, SynTemplate, attach_filter, reply_filter
from pentora_plugins.portscan._synmatch import ReplyMatcher

SPORT = 61000
LOOPBACK = socket.inet_aton("127.0.0.1")
STARTUP = "import loguru, gevent.monkey; gevent.monkey.patch_all()"


def startup() -> float:
    times = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", STARTUP], check=True)
        times.append(time.perf_counter() - start)
    return min(times)


def send_all(sock: socket.socket, hasher: SeqHasher) -> None:
    """The 65,535 SYNs, 256 a system call: the child's whole job."""
    template = SynTemplate("127.0.0.1")
    base, tcp_sum = template.for_destination(LOOPBACK)
    out = BatchSender(sock, SynTemplate.LENGTH)
    result = SendResult(mmap.mmap(-1, 4096), 0)
    size, n, packet = SynTemplate.LENGTH, 0, bytearray(base)
    secret = hasher.host_secret(LOOPBACK, LOOPBACK)
    for port in range(1, 65536):
        SynTemplate.fill(packet, tcp_sum, SPORT, port, secret ^ hasher.port_mask(port, SPORT))
        out.packets[n * size:(n + 1) * size] = packet
        out.addresses[n * 16 + 4:n * 16 + 8] = LOOPBACK
        n += 1
        if n == 256:
            out.flush(n, result)
            n = 0
    out.flush(n, result)


def send_and_receive() -> tuple[float, float, int]:
    hasher = SeqHasher()
    send_sock = open_send_socket()
    recv_sock = open_raw_socket(socket.AF_INET, socket.IPPROTO_TCP, 64 << 20)
    attach_filter(recv_sock, reply_filter(SPORT, SPORT))
    receiver, matcher = BatchReceiver(recv_sock), ReplyMatcher(hasher, SPORT, SPORT)
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the sender
        send_all(send_sock, hasher)
        os._exit(0)
    received, replies, sent_by = 0.0, 0, None
    while replies < 65535:
        cpu = time.process_time()
        batch = receiver.receive()
        replies += sum(1 for _ in matcher.matches(batch))
        if batch:  # the time spent waiting for replies is not the receiver's work
            received += time.process_time() - cpu
        if sent_by is None and os.waitpid(pid, os.WNOHANG)[0]:
            sent_by = time.perf_counter() - start
        if not batch and sent_by is not None and time.perf_counter() - start > sent_by + 1:
            break  # replies lost: say how many came
    if sent_by is None:
        os.waitpid(pid, 0)
        sent_by = time.perf_counter() - start
    return sent_by, received, replies


def main() -> None:
    send, receive, replies = send_and_receive()
    print(json.dumps({"startup": startup(), "send": send, "receive": receive, "replies": replies}))


if __name__ == "__main__":
    main()
