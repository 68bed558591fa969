"""Target parsing: ``target_parser``."""
