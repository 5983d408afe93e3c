"""Test support: synthetic media generation and a loopback media server."""
