"""`make demo`: the seed's test checklist, run against the stack of `make run`."""
