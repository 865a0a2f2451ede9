"""gRPC servicers and workers: transport in, commands out."""
