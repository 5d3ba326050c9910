"""Model serving for SageMaker hosting: Flask app, content types, dynamic batching, gunicorn launcher."""
