"""The streaming pipeline that replay and benchmark share: sensor messages in timestamp order (messages, faults),
the streaming state (sweep buffers, latest images, stale sensors, fault counts), the per-frame step (step), the
replay (replay: the loop; records: frames.jsonl; replay_outputs: pictures, video, MCAP) and the benchmark."""
