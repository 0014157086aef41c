"""Datasets and rendering for training."""
