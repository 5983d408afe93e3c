"""PRSNL Media Telegram gateway."""
