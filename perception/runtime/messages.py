"""Sensor messages of a logged drive: every sample_data record of a scene (keyframes and sweeps, all channels) as
the car received it, in timestamp order.

A message carries what a driver stack hands a perception node: the channel, the capture timestamp, a per-channel
sequence number (a gap in it is a dropped message), the file holding the payload, the sensor's calibration and the
ego pose at the capture time. The payload itself is read by the streaming state (perception.runtime.streaming).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence

from nuscenes.nuscenes import NuScenes

from perception.geometry import EgoPose, SensorCalibration
from perception.datasets.records import sample_data_calibration, sample_data_path
from perception.sensors import ALL_CHANNELS, LIDAR_CHANNEL, modality_of

@dataclass(frozen=True, eq=False)
class SensorMessage:
    """One sample_data record as a message (compared by identity: the same delivery, not the same content).

    ``timestamp_us``: capture time [us]. ``sequence``: index in the channel's chain within the scene (0, 1, ...).
    ``sample_token``: the keyframe sample the record belongs to (for a sweep, nuScenes' nearest keyframe).
    ``path``: absolute path of the payload file. ``ego_pose``: ego -> global at ``timestamp_us``.
    """

    timestamp_us: int
    channel: str
    sequence: int
    sample_data_token: str
    sample_token: str
    is_key_frame: bool
    path: str
    calibration: SensorCalibration
    ego_pose: EgoPose

    @property
    def is_lidar_keyframe(self) -> bool:
        """Whether this is a keyframe's LiDAR sweep: the only key at which a frame is a keyframe (its sample's
        ground truth and token)."""
        return self.channel == LIDAR_CHANNEL and self.is_key_frame


def message_order_key(message: SensorMessage) -> tuple:
    """Total order of a stream: timestamp, then channel (ALL_CHANNELS order), then sequence number."""
    return message.timestamp_us, ALL_CHANNELS.index(message.channel), message.sequence


def find_scene(nusc: NuScenes, scene: str) -> dict:
    """The scene record named ``scene`` (its ``name``, e.g. "scene-0916") or with that token."""
    for record in nusc.scene:
        if scene in (record["name"], record["token"]):
            return record
    names = ", ".join(record["name"] for record in nusc.scene)
    raise ValueError(f"no scene {scene!r} in {nusc.dataroot} ({nusc.version}); scenes: {names}")


def _scene_records(nusc: NuScenes, scene_record: dict, channels: Sequence[str]) -> Dict[str, List[dict]]:
    """channel -> the scene's sample_data records of that channel, sorted by timestamp.

    Walks each channel's prev/next chain from every keyframe of the scene (backwards from the first one too),
    staying inside the scene; a data set without sweeps or without links (the real fixture) still yields each
    keyframe's records.
    """
    scene_token = scene_record["token"]

    def in_scene(token: str) -> bool:
        return bool(token) and \
            nusc.get("sample", nusc.get("sample_data", token)["sample_token"])["scene_token"] == scene_token

    records: Dict[str, Dict[str, dict]] = {channel: {} for channel in channels}
    sample_token = scene_record["first_sample_token"]
    first = True
    while sample_token:
        sample = nusc.get("sample", sample_token)
        for channel in channels:
            token = sample["data"].get(channel, "")
            if first:
                while in_scene(nusc.get("sample_data", token)["prev"] if token else ""):
                    token = nusc.get("sample_data", token)["prev"]
            while in_scene(token) and token not in records[channel]:
                records[channel][token] = nusc.get("sample_data", token)
                token = records[channel][token]["next"]
        first = False
        sample_token = sample["next"]
    return {channel: sorted(by_token.values(), key=lambda r: r["timestamp"]) for channel, by_token in records.items()}


def scene_messages(nusc: NuScenes, scene: str, channels: Sequence[str] = ALL_CHANNELS) -> List[SensorMessage]:
    """Every sample_data record of ``scene`` (name or token) on ``channels``, keyframes and sweeps, as messages
    sorted by ``message_order_key``; ``sequence`` numbers each channel's records in timestamp order. A channel the
    scene never recorded contributes nothing."""
    for channel in channels:
        modality_of(channel)
    calibrations: Dict[str, SensorCalibration] = {}
    messages = []
    for channel, records in _scene_records(nusc, find_scene(nusc, scene), channels).items():
        for sequence, record in enumerate(records):
            calibration_token = record["calibrated_sensor_token"]
            if calibration_token not in calibrations:
                calibrations[calibration_token] = sample_data_calibration(nusc, record["token"])[0]
            pose = EgoPose.from_record(nusc.get("ego_pose", record["ego_pose_token"]))
            messages.append(SensorMessage(
                timestamp_us=int(record["timestamp"]), channel=channel, sequence=sequence,
                sample_data_token=record["token"], sample_token=record["sample_token"],
                is_key_frame=bool(record["is_key_frame"]), path=sample_data_path(nusc, record["token"]),
                calibration=calibrations[calibration_token], ego_pose=pose,
            ))
    return sorted(messages, key=message_order_key)

