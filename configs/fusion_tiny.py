# LiDAR + radar + camera on a 128 x 128 grid of 0.8 m cells, 256 x 144 images: trainable on 2 CPU cores.
_base_ = ["./_base_/fusion_model.py", "./_base_/synthetic_data.py", "./_base_/schedule_cpu.py",
          "./_base_/runtime.py"]
