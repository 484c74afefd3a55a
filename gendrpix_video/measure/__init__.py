"""Measurement only: model-only and end-to-end benchmarks, and GenDR (with its VAE) to compare against."""
