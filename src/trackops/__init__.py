"""trackops: the operations toolkit for MLflow tracking servers."""

__version__ = "0.1.0"
