"""Helpers the test modules share; the fixtures stay in tests/conftest.py."""
