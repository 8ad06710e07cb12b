"""chatterd test suite."""
