"""A tiny daemon with a pushable node config, run as a process by the config-push tests.

``SAMPLE_DIE_IN_WRITE=1`` makes the process SIGKILL itself inside the atomic write of a
pushed config (after the new bytes reach the temporary file, before the rename): the
"power cut in the middle of saving" case. ``SAMPLE_DIE_IN_APPLY=1`` makes it SIGKILL itself
while applying a pushed config (the new config is saved, not yet in force).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from xephang.contract import BadPayload, SimPress
from xephang.daemon import Daemon
from xephang.settings import DaemonSettings


class SampleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    greeting: str = Field(default="Xin chào", min_length=1, max_length=40)
    repeats: int = Field(default=1, ge=1, le=5)
    theme: Literal["light", "dark"] = "light"
    serial_port: str = Field(default="/dev/ttyUSB0", description="changing it needs a restart")


class SampleDaemon(Daemon[DaemonSettings, SampleConfig]):
    role: ClassVar[str] = "sample"
    node_config_model: ClassVar[type[BaseModel] | None] = SampleConfig
    health_interval_s: ClassVar[float] = 0.5

    def on_sim_press(self, press: SimPress) -> None:
        if press.button not in ("next", "recall", "finish"):
            raise BadPayload("unknown-button", f"no key {press.button!r} (keys: next, recall, finish)")
        # a visible effect a technician can check with `xephang devices` (under an alert id the
        # broker lets its account write: it runs as display-lab, a display's, contract.ALERT_IDS)
        self.raise_alert("display-missing", f"Đã nhấn {press.button}", f"Pressed {press.button}", "info")

    def apply_node_config(self, new: SampleConfig, old: SampleConfig | None) -> bool:
        if old is not None and os.environ.get("SAMPLE_DIE_IN_APPLY"):
            os.kill(os.getpid(), signal.SIGKILL)
        return old is not None and new.serial_port != old.serial_port


def _die_inside_writes() -> None:
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        name = os.readlink(f"/proc/self/fd/{fd}")
        if ".config.json" in name and name.endswith(".tmp"):
            os.ftruncate(fd, os.fstat(fd).st_size // 2)  # a torn write: half the new file
            real_fsync(fd)
            os.kill(os.getpid(), signal.SIGKILL)
        real_fsync(fd)

    os.fsync = fsync  # type: ignore[assignment]


if __name__ == "__main__":
    if os.environ.get("SAMPLE_DIE_IN_WRITE"):
        _die_inside_writes()
    sys.exit(SampleDaemon.main(sys.argv[1:]))
