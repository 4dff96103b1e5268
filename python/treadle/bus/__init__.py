"""Redis: the client, and cross-process cache invalidation."""
