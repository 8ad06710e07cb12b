"""The chatts: the in-memory feed and the group-commit writer."""
