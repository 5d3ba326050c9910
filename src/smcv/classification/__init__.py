"""Image classification (ResNet family): models, data, transforms, metrics, serving."""
