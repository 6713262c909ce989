"""Semantic segmentation: the task (data, loss, mIoU and binary scores), evaluation of a checkpoint, prediction."""
