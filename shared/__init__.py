"""The model package shared by the gateway and the worker."""
