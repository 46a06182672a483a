"""What the HTTP API says: bodies, problem documents, what a request's headers say, cursors."""
