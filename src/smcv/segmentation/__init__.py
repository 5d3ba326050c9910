"""Semantic segmentation: the pieces behind smcv.tasks.segmentation (model, masks, data, metrics, serving)."""
