"""TLS: ``ssl_analyzer``."""
