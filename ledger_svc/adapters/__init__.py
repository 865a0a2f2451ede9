"""Storage and clients of other services."""
