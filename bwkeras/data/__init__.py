"""Data: synthetic generators with known truth, bundled data sets, validated loading."""
