"""The chatterd benchmark harness: `python -m bench.run`."""
