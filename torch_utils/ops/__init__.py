"""Neural-network ops with a reference PyTorch path and optional fused kernels."""
