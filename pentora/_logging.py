"""loguru set-up for the CLI: ``--log-level``, ``--log-format text|json``, ``--log-file``."""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any, TextIO

from loguru import logger

from . import _log
from ._console import use_color, write_text
from ._log import quiet_logs
from ._text import clean

__all__ = ["configure", "enable_logs", "quiet_logs"]

_STANDARD = ("component", "node")

# The packages quieted before loguru was imported (``pentora._log.quiet_logs``).
_log.quiet_noted(logger)


def _json_sink(stream: TextIO) -> Any:
    def sink(message: Any) -> None:
        rec = message.record
        extra = rec["extra"]
        out: dict[str, Any] = {
            "level": rec["level"].name.lower(),
            "timestamp": rec["time"].astimezone().isoformat(timespec="milliseconds"),
            "component": extra.get("component", rec["name"] or "pentora"),
        }
        if "node" in extra:
            out["node"] = extra["node"]
        out["message"] = rec["message"]
        for key, value in extra.items():
            if key not in _STANDARD and not key.startswith("_"):  # _x: the text format's
                out[key] = value
        if rec["exception"] is not None:
            out["exception"] = "".join(traceback.format_exception(
                rec["exception"].type, rec["exception"].value, rec["exception"].traceback))
        write_text(stream, json.dumps(out, default=str) + "\n")  # above a live --progress bar

    return sink


def enable_logs() -> None:
    """Turn on pentora's logs and every quieted plugin package's, from now on."""
    _log.quiet_state.configured = True
    for package in _log.quieted:
        logger.enable(package)


TEXT_FORMAT = ("<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
               "<cyan>{extra[_component]}</cyan>{extra[_node]} {message}")


def _patch(record: Any) -> None:
    # Messages quote what targets sent (banners, errors), and node ids come from DAG files:
    # keep escapes off the terminal. The fields shown are cleaned copies; ``extra`` keeps
    # the values as they were for a sink of another format.
    record["message"] = clean(record["message"], None)
    extra = record["extra"]
    extra.setdefault("component", record["name"] or "pentora")
    extra["_component"] = clean(extra["component"], None)
    extra["_node"] = f" [{clean(extra['node'], None)}]" if "node" in extra else ""
    exc = record["exception"]
    extra["_exception"] = "" if exc is None else clean("".join(traceback.format_exception(
        exc.type, exc.value, exc.traceback)), None, lines=True)


def _text_format(record: Any) -> str:
    # A format function: loguru then leaves the exception out unless asked for, so the
    # trace (which quotes the exception's message) is printed cleaned, by _patch.
    return TEXT_FORMAT + ("\n{extra[_exception]}" if record["extra"].get("_exception") else "\n")


def configure(level: str = "WARNING", fmt: str = "text", file: str | None = None,
              stream: TextIO | None = None) -> None:
    """Replace loguru's handlers: one sink to ``file`` or stderr at ``level``."""
    enable_logs()
    logger.remove()
    level = level.upper()
    target: TextIO
    if file:
        target = open(file, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    else:
        target = stream or sys.stderr
    if fmt == "json":
        logger.add(_json_sink(target), level=level, format="{message}", enqueue=False)
    else:
        logger.configure(patcher=_patch)
        logger.add(_text_sink(target), level=level, format=_text_format, colorize=use_color(target),
                   backtrace=False, diagnose=False)


def _text_sink(stream: TextIO) -> Any:
    # Through write_text: while --progress draws its bar on this stream, a log line is
    # printed above the bar rather than across it.
    def sink(message: Any) -> None:
        write_text(stream, str(message))

    return sink


# The command line's configuration, when loguru was first imported through this module
# (``pentora._log.configure_on_import``).
_log.run_pending()
