"""The handoff state in Redis: key names, the Lua functions and the Python that calls them.

keys: the data layout (shards, hash tags). lua/handoff.lua: the atomic steps. reader: the
router's and CLI's reads (and the two writes routing makes). ticket_store: tickets, queues and
their indexes. outbox: the timeout worker's store (its sweeps and the outbox it relays).
agent_versions: Apply and Publish. store: the handoff service's writer, joining them all.
"""
