"""PerfSeer's gRPC prediction service."""
