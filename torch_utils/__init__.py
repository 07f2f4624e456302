"""Utilities shared by the networks and the training loop (interop: imported by published pickles)."""
