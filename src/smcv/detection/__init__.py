"""SSD object detection: labels, readers, datasets, transforms, model, metrics, serving and the converter."""
