"""The operations: what a route or the fast path asks for, one definition each (writes, reads)."""
