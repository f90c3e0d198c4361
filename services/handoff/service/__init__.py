"""The handoff use cases: read a snapshot, ask the domain, write the answer in one step.

commands: a HandoffCommand from Kafka or the API (R2, R3, R7, R22). ticket_actions: claim,
release, transfer, resolve (R15). waiting: where a queue stands (R16).
"""
