"""``DagBuilder``: DAGs built in code go through the same checks as DAG files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._dag import Dag
from ._errors import DagParseError
from ._parse import _Reader
from ._units import MAX_BYTES


class DagBuilder:
    """Build a DAG node by node::

        dag = (DagBuilder("web")
               .add_node("targets", "target_parser")
               .add_node("discover", "tcp_probe_discovery", ["targets"], {"ports": [80]})
               .build())
    """

    def __init__(self, name: str = "dag", description: str = "",
                 base_dir: str | os.PathLike[str] | None = None) -> None:
        self._doc: dict[str, Any] = {"name": name, "description": description, "nodes": []}
        self._base = Path(base_dir or os.getcwd()).resolve()

    def add_node(self, instance_id: str, module_type: str, depends_on: list[str] | None = None,
                 config: dict[str, Any] | None = None, **fields: Any) -> DagBuilder:
        """Add a node; ``fields`` are the other node fields (condition, retry, timeout,
        for_each, subdag_file, description)."""
        node: dict[str, Any] = {"instance_id": instance_id, "module_type": module_type,
                                "depends_on": list(depends_on or [])}
        if config is not None:
            node["config"] = config  # checked by build(), like every other field
        node.update(fields)
        self._doc["nodes"].append(node)
        return self

    def vars(self, **values: Any) -> DagBuilder:
        self._doc.setdefault("vars", {}).update(values)
        return self

    def engine(self, **settings: Any) -> DagBuilder:
        self._doc.setdefault("engine", {}).update(settings)
        return self

    def build(self) -> Dag:
        """The DAG; raises ``DagParseError`` listing every malformed field."""
        reader = _Reader(MAX_BYTES)
        dag = reader.read(self._doc, [], None, self._base, ())
        if reader.problems:
            raise DagParseError(reader.problems)
        return dag
