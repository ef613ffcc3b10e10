"""Offline evaluation: nuScenes submission writer and checks, the devkit's detection metrics, reports and
sensor-failure ablations."""
