"""Client for the PerfSeer service: predict a model's latency and memory without running it."""
__version__ = "0.1.0"
