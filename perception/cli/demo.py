"""The main job on the embedded default data: for now, LiDAR points projected onto the six cameras."""
from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence

import cv2
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.data_classes import LidarPointCloud

from perception.datasets.records import project_point_sensor_to_camera, sample_data_path
from perception.paths import REAL_FIXTURE_ROOT
from perception.sensors import CAMERA_CHANNELS, LIDAR_CHANNEL
from perception.viz.camera import draw_points, mosaic


def render_lidar_on_cameras(nusc: NuScenes, sample_token: str):
    """(H, W, 3) BGR mosaic of the six cameras of one sample with its LiDAR points drawn on each."""
    sample = nusc.get("sample", sample_token)
    lidar_token = sample["data"][LIDAR_CHANNEL]
    points = LidarPointCloud.from_file(sample_data_path(nusc, lidar_token)).points[:3].T
    images = {}
    for channel in CAMERA_CHANNELS:
        camera_token = sample["data"].get(channel)
        if camera_token is None:
            continue
        image = cv2.imread(sample_data_path(nusc, camera_token))
        projection = project_point_sensor_to_camera(nusc, lidar_token, camera_token, points)
        visible = projection.visible
        images[channel] = draw_points(image, projection.pixels[visible], projection.depth[visible])
    return mosaic(images, CAMERA_CHANNELS)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataroot", default=str(REAL_FIXTURE_ROOT), help="nuScenes-format data root")
    parser.add_argument("--version", default="v1.0-mini")
    parser.add_argument("--out", default="outputs/demo", help="output folder")
    args = parser.parse_args(argv)
    if not os.path.isdir(os.path.join(args.dataroot, args.version)):
        raise SystemExit(f"no nuScenes tables at {os.path.join(args.dataroot, args.version)}")
    nusc = NuScenes(version=args.version, dataroot=args.dataroot, verbose=False)
    os.makedirs(args.out, exist_ok=True)
    sample_token = nusc.scene[0]["first_sample_token"]
    path = os.path.join(args.out, "lidar_on_cameras.jpg")
    cv2.imwrite(path, render_lidar_on_cameras(nusc, sample_token))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
