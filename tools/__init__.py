"""Developer tools that drive a running Clearhouse from the outside (public REST API only)."""
