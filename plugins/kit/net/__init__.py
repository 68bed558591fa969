"""Network helpers for modules: bounded conversations, TLS and HTTP clients, raw TCP, rate limits."""
