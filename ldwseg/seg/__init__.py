"""Semantic segmentation with LDW-UNet: data, metrics, training, evaluation, prediction."""
