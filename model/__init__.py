"""MIMN (AAAI-19) in PyTorch: layers, data loading, training and evaluation."""
