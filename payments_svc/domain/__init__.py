"""Pure domain logic: no protobuf, no SQLAlchemy, no I/O."""
