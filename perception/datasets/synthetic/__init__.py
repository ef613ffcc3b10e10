"""The synthetic world: a deterministic, ray-cast driving world written in the nuScenes format.

``generate_world`` writes a dataroot that nuscenes-devkit loads unmodified (13 tables, custom splits
``synth_train`` / ``synth_val`` in ``<version>/splits.json``, LiDAR .pcd.bin, radar .pcd, camera JPEGs, map
masks). Modules: ``rig`` (calibration, timing), ``layout`` (road, buildings), ``class_specs`` (the classes'
sizes, radar cross-sections), ``meshes`` (the objects' meshes), ``actors`` (objects and their tracks), ``ego``
(the ego's manoeuvres), ``traffic`` (who is where), ``scene`` (one scene's world model), ``raycast`` (open3d
scene at one instant), ``lidar`` / ``radar`` / ``camera`` (sensor models), ``shading`` (their compiled per-pixel
and per-point lookups), ``tables`` and ``writer`` (nuScenes rows and files), ``world`` (the whole dataset).
"""
from perception.datasets.synthetic.world import (SCENE_RECORDS, TRAIN_SPLIT, VAL_SPLIT, generate_world, scenes_by_split,
                                                   unfinished_world)

__all__ = ["SCENE_RECORDS", "TRAIN_SPLIT", "VAL_SPLIT", "generate_world", "scenes_by_split", "unfinished_world"]
