"""The end of a ``pentora`` process: exit handlers, every open file flushed, then
``os._exit``, skipping the interpreter's teardown (see ``pentora.cli.run``)."""

from __future__ import annotations

import atexit
import gc
import io
import os
import sys
import threading
from typing import NoReturn


def quit_now(code: int | None) -> NoReturn:
    """End the process with ``code`` as ``sys.exit`` would, without the teardown."""
    if _threads_left():
        sys.exit(code)  # the ordinary exit joins them
    atexit._run_exitfuncs()  # loguru's and logging's, a plugin's own: as at a normal exit
    _flush_open_files()
    os._exit(0 if code is None else code)


def _threads_left() -> bool:
    """Whether a thread that is not a daemon (the exit would wait for it) still runs."""
    main = threading.main_thread()
    return any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate())


def _flush_open_files() -> None:
    """Flush what teardown would have: the standard streams, and any buffered file a
    plugin left open (teardown flushes each as it frees it; ``os._exit`` frees nothing)."""
    for obj in gc.get_objects():
        if isinstance(obj, io.IOBase) and obj not in (sys.stdout, sys.stderr):
            _flush(obj)
    for stream in (sys.stdout, sys.stderr):
        _flush(stream)


def _flush(stream: object) -> None:
    try:
        if not stream.closed:  # type: ignore[attr-defined]
            stream.flush()  # type: ignore[attr-defined]
    except (OSError, ValueError, AttributeError):
        pass  # a closed pipe, a detached stream: there is no one to tell
