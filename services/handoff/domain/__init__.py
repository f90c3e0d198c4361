"""The handoff domain: the rules, with no I/O (no Redis, no Kafka, no HTTP).

modes: mode state and the rules of R2, R3, R5-R7, R22. tickets: queues, tickets and waiting
times (R14-R18). hours: opening hours. events: state changes as the contract's events.
limits: every bound the API, CLI, console and Lua check. routing: the router's requests and
decisions. The state and service layers import these; these import nothing of theirs.
"""
