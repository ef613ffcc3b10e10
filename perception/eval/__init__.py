"""Offline evaluation: nuScenes submission writer and checks, the devkit's detection metrics, the logged drive and
the decision metrics graded against it, the robustness benchmark, resampled intervals, reports and sensor-failure
ablations."""
