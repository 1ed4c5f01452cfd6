"""Topic names of one device, built in one place so that docs, bridge and tests agree."""

from __future__ import annotations

from dataclasses import dataclass

_FORBIDDEN = set("+#\x00")


@dataclass(frozen=True)
class Topics:
    prefix: str
    device_id: str

    def __post_init__(self) -> None:
        for name, value in (("mqtt.prefix", self.prefix), ("device_id", self.device_id)):
            if not value or _FORBIDDEN & set(value):
                raise ValueError(f"{name} must be non-empty and free of MQTT wildcards")

    @property
    def base(self) -> str:
        return f"{self.prefix.rstrip('/')}/{self.device_id}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    def event(self, kind: str) -> str:
        return f"{self.base}/events/{kind}"

    @property
    def command_filter(self) -> str:
        return f"{self.base}/cmd/+"

    def command(self, name: str) -> str:
        return f"{self.base}/cmd/{name}"

    def response(self, name: str) -> str:
        return f"{self.base}/cmd/{name}/response"

    def command_name(self, topic: str) -> str | None:
        """The command a topic addresses, or None when it is not a command topic."""
        head = f"{self.base}/cmd/"
        if not topic.startswith(head):
            return None
        name = topic[len(head) :]
        return name if name and "/" not in name else None
