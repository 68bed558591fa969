"""The C structures of sendmmsg(2) and recvmmsg(2), for ``rawsend`` and ``rawrecv``.

The socket module has neither call: a batch of packets per system call goes through
ctypes, with these layouts (``struct iovec``, ``struct msghdr``, ``struct mmsghdr``).
"""

from __future__ import annotations

import ctypes

LIBC = ctypes.CDLL(None, use_errno=True)


class Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class Msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.c_void_p),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p),
                ("controllen", ctypes.c_size_t), ("flags", ctypes.c_int)]


class Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", Msghdr), ("len", ctypes.c_uint)]
