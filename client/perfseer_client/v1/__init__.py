"""Generated gRPC code for perfseer.v1 (do not edit; `make proto` regenerates)."""
