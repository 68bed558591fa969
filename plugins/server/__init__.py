"""The server mode: the REST API, its scans, schedules and alerts."""
