"""`handoffctl`: the terminal tool of users, desks and ops (typer + rich)."""
