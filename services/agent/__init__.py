"""The reference AI agent: answers on agent.replies, hands off with a HandoffCommand."""
