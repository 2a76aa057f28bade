"""A small real adapter for hosting tests: a TCP echo server whose lifecycle is observable."""

from __future__ import annotations

import asyncio
from typing import Any

from pyheart.broker import Plugin, PluginMetadata, PluginType


class EchoAdapter(Plugin):
    """Listens on 127.0.0.1 and echoes one line per connection; records the bootstrap it was given."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self.server: asyncio.Server | None = None
        self.port: int | None = None

    def get_metadata(self) -> PluginMetadata:
        return PluginMetadata(
            name="echo",
            version="1.0",
            plugin_type=PluginType.ADAPTER,
            description="TCP echo adapter for tests",
            config_schema={"bootstrap_servers": {"type": "string", "required": True}},
        )

    async def initialize(self) -> bool:
        if self.server is None:
            self.server = await asyncio.start_server(self._echo, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]
        return True

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    async def cleanup(self) -> bool:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        return True
