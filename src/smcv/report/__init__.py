"""The end-of-training report: plots and evaluation.json in /opt/ml/output/data, and the model card."""
