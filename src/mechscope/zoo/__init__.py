"""Shipped model weights (*.safetensors) and cards (*.json); train.py reproduces them."""
