"""What a replay writes: frames.jsonl (perception.runtime.records), one picture per frame
(bird's-eye view beside the six cameras with the boxes projected) and the video made of them, the MCAP file
(perception.runtime.mcap_writer) and summary.json."""
from __future__ import annotations

import json
import math
import os
import shutil
from typing import Any, Dict, Iterable, List

import cv2
import numpy as np

from perception.datasets.frame import Frame
from perception.geometry import Boxes3D
from perception.jsonfile import write_json_lines
from perception.runtime.mcap_writer import PARTIAL_SUFFIX, McapRecorder
from perception.runtime.records import FRAMES_FILE, changed_proposal
from perception.viz.bev import BevView, bev_legend, draw_bev, with_caption
from perception.viz.video import camera_mosaic, side_by_side, write_video

SUMMARY_FILE = "summary.json"
VIDEO_FILE = "replay.mp4"
MCAP_FILE = "replay.mcap"
PICTURES_DIR = "frames"
VIDEO_FRAMES_A_PERIOD = 2
"""Video frames a trigger period: a watchdog's frames fall half a period between the keyframes (at one a period
two pictures took one slot, and every later picture played half a period late)."""


class ReplayOutputs:
    """frames.jsonl (append, flushed per record), per-frame pictures (``video``), the MCAP file (``mcap``), the
    video at VIDEO_FRAMES_A_PERIOD frames a ``trigger_period_s`` in the log's time (each picture held until the next
    one's timestamp, the last one a period: a gap between frames, an outage's watchdog frames or a real-time
    replay's skipped ones, plays as long as it lasted) and summary.json,
    in ``out_dir``. ``done``: the records kept from an earlier run (resume),
    written first. An earlier run's pictures, video, MCAP and summary are removed first (a resume draws them again
    from the records; another run's would stay beside this one's records). The pictures and the MCAP show the boxes
    scoring at least ``display_min_score``."""

    def __init__(self, out_dir: str, done: Iterable[Dict[str, Any]], video: bool, mcap: bool,
                 display_min_score: float, trigger_period_s: float) -> None:
        self.out_dir = out_dir
        self.video = video
        self.display_min_score = display_min_score
        self.fps = VIDEO_FRAMES_A_PERIOD / trigger_period_s
        os.makedirs(out_dir, exist_ok=True)
        shutil.rmtree(os.path.join(out_dir, PICTURES_DIR), ignore_errors=True)
        for name in (VIDEO_FILE, MCAP_FILE, MCAP_FILE + PARTIAL_SUFFIX, SUMMARY_FILE):
            if os.path.isfile(os.path.join(out_dir, name)):
                os.remove(os.path.join(out_dir, name))
        self.frames_path = os.path.join(out_dir, FRAMES_FILE)
        write_json_lines(self.frames_path, list(done))  # what survived (a line cut short by a kill is gone)
        self._jsonl = open(self.frames_path, "a", encoding="utf-8")
        self.pictures: List[str] = []
        self.picture_times_us: List[int] = []
        self.video_size_px = (0, 0)  # (width, height): the largest picture's, as the captions' heights vary
        self.mcap = McapRecorder(os.path.join(out_dir, MCAP_FILE)) if mcap else None
        if video:
            os.makedirs(os.path.join(out_dir, PICTURES_DIR), exist_ok=True)

    def write_record(self, record: Dict[str, Any]) -> None:
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()

    def render(self, frame: Frame, record: Dict[str, Any], scene_start_us: int) -> None:
        """The frame's picture and MCAP messages, from the frame and its record: the bird's-eye view beside the
        cameras, under them its header_lines and the legend of the colours drawn."""
        boxes = Boxes3D.from_json(record["detections"])
        boxes = boxes[boxes.scores >= self.display_min_score]
        decision = record["decision"]
        if self.mcap is not None:
            self.mcap.write_frame(frame, boxes, decision, record["plan"])
        if not self.video:
            return
        trajectory = None if decision is None else np.asarray(decision["trajectory"])
        proposal = changed_proposal(record)
        lidar = frame.lidar.points if frame.lidar is not None else None
        radar = frame.radar.points if frame.radar is not None else None
        bev = draw_bev(BevView(), lidar, radar, boxes, trajectory, proposal=proposal)
        picture = side_by_side(bev, camera_mosaic(frame.cameras, boxes)) if frame.cameras else bev
        picture = with_caption(picture, header_lines(record, scene_start_us, len(boxes), self.display_min_score),
                               bev_legend(lidar, radar, boxes, trajectory, proposal))
        path = os.path.join(self.out_dir, PICTURES_DIR, f"{record['index']:06d}.png")
        if not cv2.imwrite(path, picture):
            raise ValueError(f"{path}: OpenCV could not write the picture")
        self.pictures.append(path)
        self.picture_times_us.append(record["timestamp_us"])
        self.video_size_px = tuple(max(size, drawn) for size, drawn in zip(self.video_size_px, picture.shape[1::-1]))

    def close(self) -> Dict[str, str]:
        """Closes the files, writes the video; the output paths."""
        self._jsonl.close()
        outputs = {"frames": self.frames_path}
        if self.mcap is not None:
            self.mcap.close()
            outputs["mcap"] = self.mcap.path
        if self.pictures:
            outputs["video"] = write_video(self.pictures, os.path.join(self.out_dir, VIDEO_FILE), fps=self.fps,
                                           repeats=video_frames_held(self.picture_times_us, self.fps,
                                                                     VIDEO_FRAMES_A_PERIOD),
                                           size_px=self.video_size_px)
            outputs["pictures"] = os.path.join(self.out_dir, PICTURES_DIR)
        return outputs

    def write_summary(self, payload: Dict[str, Any]) -> str:
        """summary.json; its path."""
        path = os.path.join(self.out_dir, SUMMARY_FILE)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
        return path


def header_lines(record: Dict[str, Any], scene_start_us: int, boxes_shown: int, display_min_score: float
                 ) -> List[str]:
    """A replay picture's text, from its record: the scene, the time since the scene's first sensor message
    (``scene_start_us``), the trigger and the boxes shown; the decision (maneuver, target speed, TTC, whether the
    safety layer changed the plan); with a planning model the maneuver its plan carries out (perception.decision.
    learned.plan_maneuver, from its path: the one the decision names the plan by) and the planning head's most
    likely class, labelled as the head's where the two differ; the rationale whole; the missing sensors."""
    trigger = ", keyframe" if record["is_key_frame"] else ", watchdog frame" if record["trigger"] == "watchdog" else ""
    seconds = (record["timestamp_us"] - scene_start_us) * 1e-6
    lines = [f"{record['scene']}, t={seconds:.2f} s since the scene's first sensor message{trigger}, "
             f"{boxes_shown} boxes shown (score >= {display_min_score:.2f})"]
    decision = record["decision"]
    if decision is not None:
        ttc = "inf" if decision["ttc_s"] is None else f"{decision['ttc_s']:.1f} s"
        changed = " (the safety layer changed the plan)" if decision["vetoed"] else ""
        lines.append(f"decision {decision['maneuver']}, target {decision['target_speed_mps']:.1f} m/s, TTC {ttc}"
                     f"{changed}")
        plan = record["plan"]
        if plan is not None:
            head = ("" if plan["maneuver"] == plan["plan_maneuver"] else
                    f" (the planning head's own most likely class: {plan['maneuver']})")
            lines.append(f"learned plan {plan['plan_maneuver']}, by its path{head}")
        lines.append(decision["reason"])
    if record["missing"]:
        lines.append("missing: " + ", ".join(sorted(record["missing"])))
    return lines


def video_frames_held(times_us: List[int], fps: float, last_held: int = 1) -> List[int]:
    """How many video frames at ``fps`` each picture at ``times_us`` (increasing) is shown: from its time to the next
    picture's, each start rounded on the video's clock from the first picture (so that rounding does not add up),
    at least 1 (the last one: ``last_held``)."""
    starts = [0]
    for time_us in times_us[1:]:
        starts.append(max(starts[-1] + 1, int(math.floor((time_us - times_us[0]) * 1e-6 * fps + 0.5))))
    return [later - start for start, later in zip(starts, starts[1:])] + [last_held]
