"""Port scanning: ``connect_scanner``, ``syn_scanner``, ``udp_scanner``."""
