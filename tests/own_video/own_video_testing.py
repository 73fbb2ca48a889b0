"""Helpers of the own-video tests: a synthetic dancer video with known keypoints, estimators
that return them, a request-logging proxy, and a minimal Chrome DevTools Protocol client
(a WebSocket over a plain socket: no extra package needed for the browser test)."""
from __future__ import annotations

import base64
import json
import os
import socket
import struct
import threading
from pathlib import Path
from typing import Any

import av
import numpy as np

from posecast.data.synth import synth_keypoints, synth_sequence

VIDEO = dict(seed=3, height=96, width=192)  # the test clip: 192x96, the dancer ~77 px tall


def dancer_keypoints(frames: int) -> np.ndarray:
    """The synthetic dancer's COCO-18 keypoints [T, 18, 3] (confidence 1) in VIDEO's pixels."""
    xy = synth_keypoints(frames, **VIDEO)
    return np.concatenate([xy, np.ones((*xy.shape[:2], 1), np.float32)], axis=2)


def write_video(path: Path, frames: np.ndarray, fps: int = 30, codec: str = "libx264") -> Path:
    """uint8 [T, H, W, 3] -> a video file encoded with PyAV."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode())
    return path


def dancer_video(path: Path, frames: int) -> Path:
    """The synthetic dancer as an MP4 of ``frames`` frames at 30 fps."""
    return write_video(path, synth_sequence(frames, **VIDEO)[0])


class ListEstimator:
    """A PoseEstimator that returns ``poses[i]`` on its i-th call (frames come in order), None
    for the calls in ``missing``; coordinates are scaled to the image it is given (callers
    upscale small frames), from a source of width ``width``."""

    def __init__(self, poses: np.ndarray, width: int, missing: set[int] = frozenset()) -> None:
        self.poses, self.width, self.missing, self.calls = poses, width, set(missing), 0

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        i = self.calls
        self.calls += 1
        if i in self.missing:
            return None
        pose = self.poses[i].copy()
        pose[:, :2] *= image.shape[1] / self.width
        return pose


def fixed_estimator(pose: np.ndarray, width: int):
    """A PoseEstimator that finds ``pose`` (pixels of an image ``width`` wide) in every image."""
    def estimate(image: np.ndarray) -> np.ndarray:
        out = np.array(pose, np.float32)
        out[:, :2] *= image.shape[1] / width
        return out
    return estimate


class LoggingProxy:
    """An HTTP proxy on 127.0.0.1 that records every request line it gets and refuses it (403):
    anything sent here was on its way out of the machine."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.requests.append(conn.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace"))
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


class DevTools:
    """Just enough of the Chrome DevTools Protocol over one WebSocket (RFC 6455, text frames)."""

    def __init__(self, ws_url: str, timeout: float = 30.0) -> None:
        host_port, path = ws_url.removeprefix("ws://").split("/", 1)
        host, port = host_port.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert b" 101 " in head.split(b"\r\n")[0], head
        self.next_id, self.events = 0, []

    def _send(self, text: str) -> None:
        data, mask = text.encode(), os.urandom(4)
        n = len(data)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                                bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else
                                bytes([0x80 | 127]) + struct.pack(">Q", n))
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            buf += chunk
        return bytes(buf)

    def _receive(self) -> str:
        parts = []
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            n = struct.unpack(">H", self._exact(2))[0] if n == 126 else struct.unpack(">Q", self._exact(8))[0] if n == 127 else n
            payload = self._exact(n)
            if b0 & 0x0F in (0, 1):
                parts.append(payload)
                if b0 & 0x80:
                    return b"".join(parts).decode()

    def call(self, method: str, **params: Any) -> dict:
        """Send one command and return its result (events that arrive meanwhile are kept)."""
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self._receive())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]
            self.events.append(msg)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return r["result"].get("value")

    def close(self) -> None:
        self.sock.close()
