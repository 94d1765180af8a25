"""The local pool (loky) and the plumbing its workers need on this machine."""
