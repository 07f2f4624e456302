"""Networks, losses, augmentation, datasets and training loops."""
