"""Seasons of samples: the walks' pure kernels and plan, run per partition and written to Delta."""
