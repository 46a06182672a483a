"""The HTTP edge: the one ASGI layer every request passes, and the fast adapter of the item routes."""
