"""The router: routes user messages to the AI or the human queue, and gates agent replies."""
