"""The handoff state in Redis: key names, the Lua functions and the Python that calls them.

keys: the data layout (shards, hash tags). reader: the router's and CLI's reads (and the two
writes routing makes). store: the writer (commands, agent versions, timeouts, the outbox).
ticket_store: tickets, queues and their indexes. lua/handoff.lua: the atomic steps.
"""
