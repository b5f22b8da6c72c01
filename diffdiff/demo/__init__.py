"""The demo model: procedural training scenes, its small networks, how they are trained, and the file."""

from pathlib import Path

DEMO_MODEL = Path(__file__).resolve().parent / "demo-sd1.safetensors"
DEMO_INPAINT_MODEL = DEMO_MODEL.with_name("demo-sd1-inpaint.safetensors")  # its 9-channel inpainting variant
