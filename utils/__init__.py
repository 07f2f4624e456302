"""Data preparation: video and pose I/O, pose features, pose estimation, frame extraction, latent animations."""
