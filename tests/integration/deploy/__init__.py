"""Validation of deploy/: compose stack, Kubernetes manifests, Prometheus config and alert rules."""
