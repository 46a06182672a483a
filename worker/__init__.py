"""The worker: consumes commands, applies them to the primary, records their outcomes."""
