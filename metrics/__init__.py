"""Metrics: registry, feature statistics, FID/KID/PR/IS/PPL/EQ and pose consistency."""
