"""Built-in DAG profiles (``NAME.yaml``), shipped as package data."""
