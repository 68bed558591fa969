"""The app for another WSGI server: ``gunicorn -k gevent 'pentora_plugins.server.wsgi:app()'``.

Settings come from the environment: ``PENTORA_SERVER_CONFIG`` (the config file) and
``PENTORA_SERVER_STATE`` (the state folder). Run one worker: the scans run inside it.
"""

from __future__ import annotations

import os
from typing import Any


def app() -> Any:
    from pentora_plugins.server._app import create_app
    from pentora_plugins.server._config import load_config, state_dir
    from pentora_plugins.server._serve import build
    from pentora_plugins.server._tokens import TokenStore

    from pentora import get_plugin_manager
    from pentora.cli import CliError

    try:
        config = load_config(os.environ.get("PENTORA_SERVER_CONFIG"))
        state = state_dir(os.environ.get("PENTORA_SERVER_STATE"))
        pm = get_plugin_manager()
        server = build(pm, _scan_parser(pm), config, state, TokenStore(state))
    except CliError as e:
        raise SystemExit(f"pentora server: {e}") from None
    server.manager.interrupted_at_start()
    return create_app(server)


def _scan_parser(pm: Any) -> Any:
    from pentora.cli import scan_parser

    return scan_parser(pm)
