"""Metrics of models on data, shared by jobs, the CLI and training."""
