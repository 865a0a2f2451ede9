"""Clearhouse chassis: the cross-cutting library every process shares.

Settings, telemetry, gRPC server and channels, errors, mTLS, storage, Redis, ids, money,
signatures. Services import this and the protos' bindings, never each other.
"""

__version__ = "0.1.0"
