"""The scan store: every scan in SQLite, ``pentora scans …``, and ``pentora scan --resume``.

Each scan is written as it runs: its DAG (JSON text ``load_dag`` reads back) and vars,
every node's record as the node ends, every finding (``pentora_record``) as it is made,
the DataContext keys each completed node set, and the per-target checkpoints of
partly done nodes (``ctx.checkpoint``). Durability: writes are queued and committed
every 100 ms and at every node's end, in WAL mode with ``synchronous=FULL``; a SIGKILL
or a power cut loses at most the last 100 ms of findings — and those belong to items
not yet checkpointed, which a resume does again. Each finding is kept once per scan.

``pentora scan --resume ID`` runs the stored DAG again under the same ID: completed
nodes get their outputs back and do not run, partly done ones skip the targets they
finished, and the findings of both are announced again so that the resumed run's
outputs are whole.

Where: ``--store PATH``, else ``$PENTORA_STORE``, else ``~/.local/share/pentora/scans.db``
(``$XDG_DATA_HOME`` honoured); ``--no-store`` or ``PENTORA_STORE=off`` turns it off. The
command line stores every scan; a library user's scans are stored only with
``$PENTORA_STORE`` set or a ``StorePlugin(path)`` registered. ``PENTORA_STORE_KEEP=N``
keeps the newest N scans after each scan; ``PENTORA_STORE_WAIT`` is how long a scan's end
waits for a store another pentora has locked (default 30 s) before leaving its writes in
a pending file that the next use of the store imports. A damaged store is not waited for:
``pentora scans check --repair`` rebuilds it from what can be read.
"""

from __future__ import annotations

from typing import Any

from pentora_plugins.store._recorder import StorePlugin

from pentora import hookimpl

__all__ = ["StorePlugin"]

# Its one part: the recorder, one per plugin manager.
pentora_former_names: dict[str, str] = {}


@hookimpl
def pentora_plugin_added(pm: Any) -> None:
    pm.register(StorePlugin(), name="store.recorder")
