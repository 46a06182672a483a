"""One plain async function per command (worker/catalogue.py says which): they never commit."""
