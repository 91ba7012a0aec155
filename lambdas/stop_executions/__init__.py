"""Stops the training pipeline's running executions and their SageMaker jobs (see handler.py)."""
