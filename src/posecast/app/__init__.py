"""The local web page of posecast (`posecast app`; Gradio, the optional ``app`` extra)."""
