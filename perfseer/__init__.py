"""PerfSeer: predict a model's speed and memory from its graph instead of running it."""
__version__ = "0.1.0"
