"""REST transcoding gateway: HTTP/JSON at the edge, gRPC to the payments service behind it."""
