"""Decision outputs from detections: maneuver, time-to-collision, lane-change feasibility, a planned trajectory.

``decide(boxes, ego, config)`` turns ego-frame detections (with velocities) and the ego state
(``EgoState.from_poses``) into a ``Decision``; the rules and the lanes they assume are written in
perception.decision.planner, perception.decision.types and perception.decision.lanes.
"""
from perception.decision.ego_state import EgoState
from perception.decision.planner import decide, minimal_risk_stop
from perception.decision.prediction import lane_index, predict_agents
from perception.decision.types import Decision, Maneuver, PlannerConfig

__all__ = ["Decision", "EgoState", "Maneuver", "PlannerConfig", "decide", "lane_index", "minimal_risk_stop",
           "predict_agents"]
