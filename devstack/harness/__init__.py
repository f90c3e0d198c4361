"""What the tests and the benchmarks share to drive a real stack: its environment, a Kafka
bus to produce and read the contract's records, sample events, a load generator and
sandboxes (services of one run on prefixed topics and a Redis database of their own).

It lives here, not under tests/, because `bench/` ships and must not depend on the test tree.
"""
