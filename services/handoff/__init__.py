"""The handoff service: owner of the mode state, its commands and the agent versions."""
