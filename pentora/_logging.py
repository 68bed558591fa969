"""loguru set-up for the CLI: ``--log-level``, ``--log-format text|json``, ``--log-file``."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from loguru import logger

from ._text import clean

_STANDARD = ("component", "node")
_configured = False
_quieted: set[str] = set()


def quiet_logs(package: str) -> None:
    """Keep ``package``'s logs off until logging is configured (loguru's advice for
    libraries). Plugin packages call this at import; ``configure()`` turns them on,
    whatever the import order."""
    if not _configured:
        _quieted.add(package)
        logger.disable(package)


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
            if key not in _STANDARD:
                out[key] = value
        if rec["exception"] is not None:
            out["exception"] = "".join(__import__("traceback").format_exception(
                rec["exception"].type, rec["exception"].value, rec["exception"].traceback))
        stream.write(json.dumps(out, default=str) + "\n")
        stream.flush()

    return sink


def enable_logs() -> None:
    """Turn on pentora's logs and every quieted plugin package's, from now on."""
    global _configured
    _configured = True
    for package in _quieted:
        logger.enable(package)


TEXT_FORMAT = ("<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
               "<cyan>{extra[component]}</cyan>{extra[_node]} {message}")


def _patch(record: Any) -> None:
    # Messages quote what targets sent (banners, errors): keep escapes off the terminal.
    record["message"] = clean(record["message"], None)
    extra = record["extra"]
    extra.setdefault("component", record["name"] or "pentora")
    extra["_node"] = f" [{extra['node']}]" if "node" in extra else ""


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
        logger.add(target, level=level, format=TEXT_FORMAT, colorize=target.isatty()
                   if hasattr(target, "isatty") else False, backtrace=False, diagnose=False)
