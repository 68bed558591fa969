"""Outputs: JSONL, the terminal summary, the report formats, ``json_reporter``, ``pentora report``."""
