"""What the operations stand on: the bus, the queries, where reads go, who calls, limits, metrics."""
