"""The gateway: authenticates HTTP callers, validates, publishes commands, reads from the replica."""
