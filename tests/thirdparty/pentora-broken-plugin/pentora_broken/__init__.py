"""A plugin that fails on import, like one whose native dependency is missing."""

raise ImportError("pentora-broken-plugin needs libpentora-broken.so, which is not installed")
