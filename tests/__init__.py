"""Tests for PRSNL Media."""
