"""The "Effective PyTorch" guide's naive and optimized ops, checked by the plugin."""
