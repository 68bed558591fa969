"""Services: ``banner_grabber``, ``fingerprint_parser``, ``asset_profiler``."""
