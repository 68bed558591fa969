"""The web: ``http_scanner``, ``webapp_fingerprinter``."""
