"""Datasets: the nuScenes adapter (real data and the synthetic world), transforms and collation."""
