"""The wire contract: command bodies, message headers and outcomes."""
