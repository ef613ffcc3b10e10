"""The safety layer against an independent oracle: the synthetic world's scripted drive never collides, so the
safety layer, given the logged drive (its future poses and the maneuver label derived from them) and the ground
truth of the world model and its lane map, should keep it. Each veto of the logged drive is a flaw of the
rules."""
import numpy as np

from perception.classes import DETECTION_CLASSES
from perception.datasets.maneuver_labels import VEHICLE_CLASSES, ManeuverLabelConfig, label_maneuver
from perception.datasets.synthetic.scene import LEAD_IN_S, build_scene, scene_duration_s
from perception.decision import EgoState, PlannerConfig
from perception.decision.safety import check_plan
from perception.geometry import Boxes3D, EgoPose

CONFIG = PlannerConfig()
LABELS = ManeuverLabelConfig()
POSE_PERIOD_S = 0.05
"""The LiDAR sweeps' rate (20 Hz): the past poses the ego state is estimated from."""
RANGE_M = 60.0


def _truth(model, t: float) -> Boxes3D:
    """The world's objects within RANGE_M at time t, in the ego frame (velocities over ground, rotated into it)."""
    to_ego = model.ego_to_global(t).inverse()
    rows = []
    for actor in model.actors:
        centre, yaw = actor.box_centre(t)
        local = to_ego.apply(centre[None])[0]
        if np.hypot(*local[:2]) <= RANGE_M:
            velocity = to_ego.rotation[:2, :2] @ np.asarray(actor.track.velocity(t), dtype=np.float64)
            rows.append((local, actor.size_wlh, yaw - model.ego_to_global(t).yaw, velocity,
                         DETECTION_CLASSES.index(actor.detection_name)))
    if not rows:
        return Boxes3D.empty()
    centres, sizes, yaws, velocities, labels = (np.array(column) for column in zip(*rows))
    return Boxes3D(centres, sizes, yaws, velocities, labels)


def logged_drive_verdicts(scene_index: int, samples: int = 40):
    """(label, Decision) of check_plan on the logged drive at each keyframe of a scene of the seed-0 world that
    the log covers for the horizon, with the scene's lane map (the labels named by it, as the tables' are)."""
    model = build_scene(0, scene_index, samples)
    lane_map = model.world.road.lane_centres()
    vehicles = [DETECTION_CLASSES.index(name) for name in VEHICLE_CLASSES]
    verdicts = []
    for k in range(samples):
        t = 0.5 * k
        if t + LABELS.horizon_s > scene_duration_s(samples):
            continue
        to_ego = model.ego_to_global(t).inverse()
        times = LABELS.window_times_s[LABELS.window_times_s + t >= -LEAD_IN_S]
        poses = [to_ego @ model.ego_to_global(t + dt) for dt in times]
        xy, yaw = np.array([p.translation[:2] for p in poses]), np.array([p.yaw for p in poses])
        truth = _truth(model, t)
        lanes = lane_map.transformed(to_ego)
        label = label_maneuver(times, xy, yaw, truth.centers[np.isin(truth.labels, vehicles), :2], LABELS, lanes)
        past = np.arange(max(-2.0, -t - LEAD_IN_S), 1e-9, POSE_PERIOD_S)
        ego = EgoState.from_poses([EgoPose(int(round((t + dt) * 1e6)), model.ego_to_global(t + dt)) for dt in past])
        future = xy[np.searchsorted(times, CONFIG.step_times_s - 1e-9)]
        verdicts.append((label, check_plan(future, label, truth, ego, CONFIG, lanes=lanes)))
    return verdicts


def test_the_logged_drive_is_kept():
    # scenes 0 and 1 (synth_train of datasets/synthetic) and 10, 11 (unseen): 136 keyframes. Measured: 116 kept
    # with the keyframe's straight lanes and the planner's 2.5 m standstill gap as the safety margin (refused lane
    # changes mid-way, sidewalk pedestrians and a lead in the target lane; stops 1.9-2.7 m behind a lead), 131 now;
    # the 5 left are drive-offs behind a lead that the constant-velocity prediction keeps standing
    verdicts = sum((logged_drive_verdicts(index) for index in (0, 1, 10, 11)), [])
    vetoed = [(label.value, decision.reason) for label, decision in verdicts if decision.vetoed]
    assert len(verdicts) == 136
    assert len(vetoed) <= 0.05 * len(verdicts), vetoed
    assert all(label == "STOP" and "braking margin" in reason for label, reason in vetoed), vetoed
