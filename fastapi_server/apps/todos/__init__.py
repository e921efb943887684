"""The todos app: todos of their owner, optionally shared through a project."""
