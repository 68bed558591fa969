"""pentora's built-in plugins, installed as ``pentora_plugins``.

Each submodule is a plugin registered through the ``pentora`` entry-point group, the
same path a third-party package takes; the core never imports this package.
"""
