"""pentora's built-in plugins, installed as ``pentora_plugins``.

Each submodule is a plugin registered through the ``pentora`` entry-point group, the
same path a third-party package takes; the core never imports this package.
"""

from pentora import quiet_logs

quiet_logs("pentora_plugins")  # quiet as a library; configuring logging (the CLI does) enables it
