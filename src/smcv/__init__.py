"""smcv: open SageMaker algorithm images for medical computer vision."""

__version__ = "0.1.0"
