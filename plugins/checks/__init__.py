"""Misconfiguration checks: ``http_checks``, ``service_checks``, ``ssh_checks``, ``tls_checks``."""
