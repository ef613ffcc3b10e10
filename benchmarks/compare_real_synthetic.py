"""Sensor statistics of real nuScenes keyframes beside the synthetic world's: where the synthetic-to-real gap is.

    .venv/bin/python benchmarks/compare_real_synthetic.py \\
        --real ../shared/fixtures/nuscenes-scene0916 --real-version v1.0-mini --real-split real_finetune real_val \\
        --synthetic datasets/synthetic --synthetic-version v1.0-synth --synthetic-split synth_val --out DIR

Both sources are read through the project's loader (perception.datasets.loader.NuScenesFrames) with 1 LiDAR sweep
and 1 radar sweep, so that keyframe is compared with keyframe. Per source: LiDAR points per frame, intensity
(0-255), range from the sensor, points per beam beyond NEAR_SENSOR_M (the corruptions' beam_index: the nearest of
the HDL-32E's 32 evenly spaced beams to the elevation in the sensor's frame; points off the fan not counted),
fraction of points less than GROUND_BAND_M above the ground plane guess z = 0 (the nuScenes ego frame's origin lies
on the road), fraction within NEAR_SENSOR_M of the sensor (no-return points and returns off the ego car), radar
points per frame, RCS, compensated speed, annotated objects per frame by class and their LiDAR points per box
(num_lidar_pts of the sample_annotation table), also for the boxes within NEAR_BOX_M of the ego only, and the angle
between each car's heading and the ego's (0: along, 90 degrees: across, e.g. parked in a perpendicular bay; the
direction of travel left out), with the cars standing across (ACROSS_DEG) counted a frame and their distance to the
side of the ego, and the cars' LiDAR points by their distance from the ego (CAR_RANGE_EDGES_M: median and the
fraction with none). Writes DIR/sensor_statistics.json (the numbers), .md (mean / median / p10 / p90 per statistic,
the sources side by side) and .png (the histograms overlaid, each normalised to a fraction per bin, on bins the
sources share). Statistics of no value (nothing to summarise) are null in the JSON.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Dict, List, Mapping, Sequence

import numpy as np

from perception.classes import DETECTION_CLASSES
from perception.datasets.corruptions.lidar import beam_index
from perception.datasets.frame import LIDAR_COLUMNS, RADAR_COLUMNS
from perception.datasets.loader import NuScenesFrames
from perception.jsonfile import finite_or_null
from perception.plotting import pyplot
from perception.sensors import LIDAR_BEAM_COUNT, LIDAR_MOUNT_M

GROUND_BAND_M = 0.3
"""A point less than this above the ground plane guess counts as a ground return [m]."""
NEAR_SENSOR_M = 2.0
"""A point this close to the LiDAR is a no-return point or a return off the ego car [m]."""
NEAR_BOX_M = 40.0
"""``box_lidar_points_near``: boxes whose centre lies within this xy distance of the ego [m]."""
HISTOGRAM_EDGES = {
    "lidar_intensity": np.linspace(0.0, 256.0, 33),
    "lidar_range_m": np.linspace(0.0, 100.0, 51),
    "radar_rcs_dbsm": np.linspace(-20.0, 40.0, 31),
    "radar_speed_mps": np.linspace(0.0, 30.0, 31),
    "box_lidar_points": np.concatenate([[0.0], np.logspace(0.0, 4.0, 25)]),
    "box_lidar_points_near": np.concatenate([[0.0], np.logspace(0.0, 4.0, 25)]),
    "car_heading_to_ego_deg": np.linspace(0.0, 90.0, 10),
    "across_car_side_offset_m": np.linspace(0.0, 50.0, 26),
}
"""Bin edges of each per-point (per-box) histogram; values outside the edges are not counted."""
ACROSS_DEG = 45.0
"""A car stands across the ego when its axis is at least this far off the ego's x axis; ``cars_across`` counts
them a frame, ``across_car_side_offset_m`` is their |y| [m] in the ego frame (how close beside the ego's path)."""
CAR_RANGE_EDGES_M = (0.0, 10.0, 20.0, 30.0, 40.0, 50.0)
"""``car_lidar_points_by_range``: the cars' LiDAR points per box in these bins of xy distance from the ego [m]."""
SYMLOG_LINEAR_TO = 1
"""The plot's symlog axes (LiDAR points, whole numbers) are linear from 0 to this, logarithmic above."""
_X, _Y, _Z, _INTENSITY = (LIDAR_COLUMNS.index(c) for c in ("x", "y", "z", "intensity"))
_RCS, _VX, _VY = (RADAR_COLUMNS.index(c) for c in ("rcs", "vx_comp", "vy_comp"))


def points_per_beam(points_xyz: np.ndarray) -> np.ndarray:
    """(LIDAR_BEAM_COUNT,) int number of points (N, 3) [m, ego frame] on each beam: those farther than NEAR_SENSOR_M
    from the sensor (no-return points and the ego car's own body left out), on some beam."""
    far = np.linalg.norm(np.asarray(points_xyz, dtype=np.float64) - np.asarray(LIDAR_MOUNT_M), axis=1) > NEAR_SENSOR_M
    beam = beam_index(np.asarray(points_xyz)[far], mark_off_fan=True)
    return np.bincount(beam[beam >= 0], minlength=LIDAR_BEAM_COUNT)


def ground_fraction(points_xyz: np.ndarray, ground_z_m: float = 0.0) -> float:
    """Fraction of points (N, 3) [m] less than GROUND_BAND_M above ``ground_z_m``; nan for no point."""
    if len(points_xyz) == 0:
        return float("nan")
    return float(np.mean(points_xyz[:, 2] < ground_z_m + GROUND_BAND_M))


def heading_to_ego_deg(yaws_rad: np.ndarray) -> np.ndarray:
    """Angle [deg] in [0, 90] between a box's axis and the ego's x axis, for yaws (N,) [rad] in the ego frame: the
    direction of travel left out (0 and 180 degrees both give 0)."""
    folded = np.abs(np.angle(np.exp(1j * np.asarray(yaws_rad, dtype=np.float64))))
    return np.degrees(np.minimum(folded, np.pi - folded))


def summarize(values: Sequence[float]) -> Dict[str, float]:
    """count, mean, median, p10, p90 of the finite values (nan for each but count when there are none)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"count": 0, "mean": float("nan"), "median": float("nan"), "p10": float("nan"), "p90": float("nan")}
    p10, median, p90 = np.percentile(values, [10, 50, 90])
    return {"count": int(len(values)), "mean": float(values.mean()), "median": float(median), "p10": float(p10),
            "p90": float(p90)}


def source_statistics(frames: Sequence) -> Dict[str, object]:
    """Per-frame and pooled per-point / per-box statistics of Frames (lidar, radar, gt tables), as plain numbers."""
    per_frame: Dict[str, List[float]] = {"lidar_points": [], "ground_fraction": [], "near_sensor_fraction": [],
                                         "radar_points": [], "objects": [], "cars_across": []}
    pooled: Dict[str, List[np.ndarray]] = {name: [] for name in HISTOGRAM_EDGES}
    beam_counts, objects_by_class, box_points_by_class = [], [], {name: [] for name in DETECTION_CLASSES}
    car_ranges, car_points = [], []
    for frame in frames:
        lidar = frame.lidar.points if frame.lidar is not None else np.zeros((0, len(LIDAR_COLUMNS)), np.float32)
        radar = frame.radar.points if frame.radar is not None else np.zeros((0, len(RADAR_COLUMNS)), np.float32)
        xyz = lidar[:, [_X, _Y, _Z]]
        per_frame["lidar_points"].append(len(lidar))
        per_frame["ground_fraction"].append(ground_fraction(xyz))
        ranges = np.linalg.norm(xyz - np.asarray(LIDAR_MOUNT_M), axis=1)
        per_frame["near_sensor_fraction"].append(float(np.mean(ranges < NEAR_SENSOR_M)) if len(xyz) else np.nan)
        per_frame["radar_points"].append(len(radar))
        beam_counts.append(points_per_beam(xyz))
        pooled["lidar_intensity"].append(lidar[:, _INTENSITY])
        pooled["lidar_range_m"].append(ranges)
        pooled["radar_rcs_dbsm"].append(radar[:, _RCS])
        pooled["radar_speed_mps"].append(np.hypot(radar[:, _VX], radar[:, _VY]))
        labels = frame.gt_boxes.labels if frame.gt_boxes is not None else np.zeros(0, np.int64)
        num_points = frame.gt_num_lidar_points if frame.gt_num_lidar_points is not None else np.zeros(0, np.int64)
        per_frame["objects"].append(len(labels))
        across = np.zeros(0)
        objects_by_class.append(np.bincount(labels, minlength=len(DETECTION_CLASSES)))
        pooled["box_lidar_points"].append(num_points)
        if len(labels):
            cars = labels == DETECTION_CLASSES.index("car")
            heading = heading_to_ego_deg(frame.gt_boxes.yaws[cars])
            pooled["car_heading_to_ego_deg"].append(heading)
            across = np.abs(frame.gt_boxes.centers[cars, 1][heading >= ACROSS_DEG])
            pooled["across_car_side_offset_m"].append(across)
            box_ranges = np.linalg.norm(frame.gt_boxes.centers[:, :2], axis=1)
            car_ranges.append(box_ranges[cars])
            car_points.append(num_points[cars])
            pooled["box_lidar_points_near"].append(num_points[box_ranges < NEAR_BOX_M])
        per_frame["cars_across"].append(len(across))
        for label, count in zip(labels, num_points):
            box_points_by_class[DETECTION_CLASSES[label]].append(int(count))
    pooled_values = {name: np.concatenate(parts) if parts else np.zeros(0) for name, parts in pooled.items()}
    beam_counts = np.array(beam_counts).reshape(-1, LIDAR_BEAM_COUNT)
    objects_by_class = np.array(objects_by_class).reshape(-1, len(DETECTION_CLASSES))
    return {
        "frames": len(per_frame["lidar_points"]),
        "summary": {**{name: summarize(values) for name, values in per_frame.items()},
                    "lidar_points_per_beam": summarize(beam_counts.ravel()),
                    **{name: summarize(values) for name, values in pooled_values.items()}},
        "histograms": {name: {"edges": HISTOGRAM_EDGES[name].tolist(),
                              "counts": np.histogram(values, HISTOGRAM_EDGES[name])[0].tolist()}
                       for name, values in pooled_values.items()},
        "mean_points_per_beam": beam_counts.mean(axis=0).tolist() if len(beam_counts) else [],
        "objects_per_frame_by_class": dict(zip(DETECTION_CLASSES, objects_by_class.mean(axis=0).tolist()))
        if len(objects_by_class) else {},
        "median_lidar_points_per_box_by_class": {name: float(np.median(counts)) for name, counts
                                                 in box_points_by_class.items() if counts},
        "car_lidar_points_by_range": points_by_range(np.concatenate(car_ranges) if car_ranges else np.zeros(0),
                                                     np.concatenate(car_points) if car_points else np.zeros(0)),
    }


def points_by_range(ranges_m: np.ndarray, num_points: np.ndarray) -> Dict[str, Dict[str, float]]:
    """Per CAR_RANGE_EDGES_M bin ("lo-hi" [m]) of the boxes' distances ``ranges_m`` (N,): how many boxes, the median
    of their LiDAR points ``num_points`` (N,) and the fraction with none (nan for an empty bin)."""
    bins = {}
    for low, high in zip(CAR_RANGE_EDGES_M[:-1], CAR_RANGE_EDGES_M[1:]):
        in_bin = np.asarray(num_points)[(ranges_m >= low) & (ranges_m < high)]
        bins[f"{low:g}-{high:g}"] = {"count": int(len(in_bin)),
                                     "median": float(np.median(in_bin)) if len(in_bin) else float("nan"),
                                     "zero_fraction": float(np.mean(in_bin == 0)) if len(in_bin) else float("nan")}
    return bins


def load_frames(root: str, version: str, splits: Sequence[str]) -> List:
    """The keyframes of ``splits`` with 1 LiDAR sweep and 1 radar sweep, no camera."""
    frames, nusc = [], None
    for split in splits:
        dataset = NuScenesFrames(root, version, split, lidar_sweeps=1, radar_sweeps=1, cameras=False, nusc=nusc,
                                 progress=False)
        nusc = dataset.nusc
        frames.extend(dataset[i] for i in range(len(dataset)))
    return frames


def markdown_table(statistics: Mapping[str, Mapping]) -> str:
    """mean / median / p10 / p90 of every summarised statistic, one column group per source."""
    sources = list(statistics)
    header = "| statistic | " + " | ".join(f"{s} mean | {s} median | {s} p10 | {s} p90" for s in sources) + " |"
    lines = [header, "|" + "---|" * (1 + 4 * len(sources))]
    lines.append("| frames | " + " | ".join(f"{statistics[s]['frames']} | | |" for s in sources) + " |")
    for name in statistics[sources[0]]["summary"]:
        cells = []
        for source in sources:
            row = statistics[source]["summary"][name]
            cells.append(" | ".join(f"{row[k]:.3g}" for k in ("mean", "median", "p10", "p90")))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| objects per frame | " + " | ".join(sources) + " |", "|---|" + "---|" * len(sources)]
    for name in DETECTION_CLASSES:
        lines.append(f"| {name} | " + " | ".join(
            f"{statistics[s]['objects_per_frame_by_class'].get(name, float('nan')):.2f}" for s in sources) + " |")
    lines += ["", "| cars' LiDAR points by distance [m] | " + " | ".join(
        f"{s} cars | {s} median | {s} none" for s in sources) + " |", "|---|" + "---|" * (3 * len(sources))]
    for name in statistics[sources[0]]["car_lidar_points_by_range"]:
        cells = [statistics[s]["car_lidar_points_by_range"][name] for s in sources]
        lines.append(f"| {name} | " + " | ".join(
            f"{c['count']} | {c['median']:.3g} | {c['zero_fraction']:.2f}" for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_plot(path: str, statistics: Mapping[str, Mapping], sources: Mapping[str, str]) -> None:
    """The histograms of every source overlaid (densities), points per beam and objects per class beside them,
    titled with each source's data (``sources``: source -> its dataroot, version and splits). A symlog axis is
    linear from 0 to SYMLOG_LINEAR_TO and logarithmic above, as its label says."""
    plt = pyplot()

    symlog = f"symlog: linear 0-{SYMLOG_LINEAR_TO}, log above"
    x_labels = {"lidar_intensity": "LiDAR intensity (0-255)", "lidar_range_m": "range from the LiDAR [m]",
                "radar_rcs_dbsm": "radar RCS [dBsm]", "radar_speed_mps": "radar compensated speed [m/s]",
                "box_lidar_points": f"LiDAR points in a box ({symlog})",
                "box_lidar_points_near": f"LiDAR points in a box within {NEAR_BOX_M:g} m ({symlog})",
                "car_heading_to_ego_deg": "car heading to the ego's [deg] (0: along, 90: across)",
                "across_car_side_offset_m": "|y| of a car standing across [m]"}
    names = list(HISTOGRAM_EDGES)
    figure, axes = plt.subplots(4, 3, figsize=(15, 16))
    for axis, name in zip(axes.ravel(), names):
        for source, stats in statistics.items():
            histogram = stats["histograms"][name]
            counts = np.asarray(histogram["counts"], dtype=np.float64)
            axis.stairs(counts / max(counts.sum(), 1.0), histogram["edges"], label=source)
        axis.set_title(name, fontsize=9)
        axis.set_xlabel(x_labels[name], fontsize=8)
        axis.set_ylabel("fraction")
        if name.startswith("box_lidar_points"):
            axis.set_xscale("symlog", linthresh=SYMLOG_LINEAR_TO)
    beam_axis, class_axis, summary_axis, range_axis, *unused = axes.ravel()[len(names):]
    for axis in unused:
        axis.set_axis_off()
    width = 0.8 / len(statistics)
    for offset, (source, stats) in enumerate(statistics.items()):
        beam_axis.plot(range(LIDAR_BEAM_COUNT), stats["mean_points_per_beam"], marker=".", label=source)
        per_class = [stats["objects_per_frame_by_class"].get(n, 0.0) for n in DETECTION_CLASSES]
        class_axis.bar(np.arange(len(DETECTION_CLASSES)) + offset * width, per_class, width, label=source)
        bins = stats["car_lidar_points_by_range"]
        range_axis.plot(list(bins), [b["median"] for b in bins.values()], marker="o", label=source)
    range_axis.set_yscale("symlog", linthresh=SYMLOG_LINEAR_TO)
    range_axis.set_title("median LiDAR points per car box by distance from the ego", fontsize=9)
    range_axis.set(xlabel="distance from the ego [m]", ylabel=f"median LiDAR points ({symlog})")
    beam_axis.set_title("mean LiDAR points per beam", fontsize=9)
    beam_axis.set(xlabel="beam (0 = lowest)", ylabel="points a frame")
    class_axis.set_title("objects per frame by class", fontsize=9)
    class_axis.set(xlabel="class", ylabel="objects a frame")
    class_axis.set_xticks(np.arange(len(DETECTION_CLASSES)) + 0.4 - width / 2, DETECTION_CLASSES, rotation=60,
                          fontsize=7)
    for source, stats in statistics.items():
        summary_axis.bar(source, stats["summary"]["ground_fraction"]["mean"])
    summary_axis.set_title(f"mean fraction of points < {GROUND_BAND_M} m above z = 0", fontsize=9)
    summary_axis.set(xlabel="source", ylabel="fraction")
    figure.suptitle("; ".join(f"{source}: {data}" for source, data in sources.items()), fontsize=10)
    for axis in axes.ravel():
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    figure.tight_layout(rect=(0.0, 0.0, 1.0, 0.98))  # room for the title
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", required=True, help="dataroot of the real nuScenes keyframes")
    parser.add_argument("--real-version", default="v1.0-mini")
    parser.add_argument("--real-split", nargs="+", default=["real_finetune", "real_val"])
    parser.add_argument("--synthetic", required=True, help="dataroot of the synthetic world")
    parser.add_argument("--synthetic-version", default="v1.0-synth")
    parser.add_argument("--synthetic-split", nargs="+", default=["synth_val"])
    parser.add_argument("--out", required=True, help="folder for sensor_statistics.{json,md,png}")
    args = parser.parse_args(argv)
    statistics = {
        "real": source_statistics(load_frames(args.real, args.real_version, args.real_split)),
        "synthetic": source_statistics(load_frames(args.synthetic, args.synthetic_version, args.synthetic_split)),
    }
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, "sensor_statistics")
    with open(stem + ".json", "w") as handle:
        json.dump(finite_or_null({"sources": {"real": args.real, "synthetic": args.synthetic}, **statistics}), handle,
                  indent=2, allow_nan=False)
    table = markdown_table(statistics)
    with open(stem + ".md", "w") as handle:
        handle.write(table)
    write_plot(stem + ".png", statistics, {
        "real": f"{args.real} {args.real_version} {' '.join(args.real_split)}",
        "synthetic": f"{args.synthetic} {args.synthetic_version} {' '.join(args.synthetic_split)}"})
    print(table)


if __name__ == "__main__":
    main()
