"""The timeout worker: emits the ModeChanged of every idle-timeout revert, once (R5)."""
