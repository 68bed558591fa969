"""The ``pentora`` command line."""
