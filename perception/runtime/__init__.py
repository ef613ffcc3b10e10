"""The streaming pipeline that replay and benchmark share: sensor messages in timestamp order, the streaming state
(sweep buffers, latest images, stale sensors, fault counts), stage timers, the replay loop and the benchmark."""
