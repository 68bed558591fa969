"""The toolkit for module authors: records, inputs, findings, port specs, catalogs, targets,
sharding, distribution builds (``distro``) and their version orders (``distver``), and ``net``
(bounded conversations, TLS, HTTP, raw TCP, rate limits). No hooks."""
