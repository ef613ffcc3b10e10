"""Pictures: camera overlays, bird's-eye views and video, drawn with OpenCV."""
