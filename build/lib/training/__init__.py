"""Training, evaluation, data and export helpers for instrec (needs PyTorch for models)."""
