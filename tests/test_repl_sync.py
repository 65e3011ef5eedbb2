"""The REPL syncs in the background when sync_enabled is on, and says what arrived."""

from __future__ import annotations

import json
from pathlib import Path

from node.core import open_core
from node.home import Home
from tests.helpers import start_mirror, stop_mirror
from tests.sync_helpers import wait_for
from tests.test_repl import running_repl
from tests.test_sync_e2e import LOOPBACK, has, mirror, pair


async def test_arrivals_from_another_device_show_above_the_prompt(tmp_path: Path) -> None:
    laptop, phone = tmp_path / "laptop", tmp_path / "phone"
    await pair(phone, laptop)  # the laptop joins the phone's group
    for home in (laptop, phone):
        status, _, err = await mirror(home, "share", "journal", "--class", "devices")
        assert status == 0, err
    serve = await start_mirror(phone, "serve", "--json", *LOOPBACK)
    try:
        config = json.loads((laptop / "config.json").read_text())
        config.update(sync_enabled=True, discovery=False, sync_listen="127.0.0.1:0",
                      sync_peers=[str(serve.json["address"])])
        (laptop / "config.json").write_text(json.dumps(config))
        async with open_core(Home(laptop)) as core, running_repl(core) as repl:
            status, _, err = await mirror(phone, "reflect", "--no-mirrorback",
                                          "a thought from the phone")
            assert status == 0, err
            await repl.expect("1 reflection arrived from ")
            await repl.expect("a thought from the phone")
            text = repl.out.text()
            assert "arrived from this device" not in text
            assert "arrived from another device" not in text  # the peer is named
            # and what the laptop writes reaches the phone
            await repl.reflect("a thought from the laptop")
            await wait_for(lambda: has(phone, "a thought from the laptop"), deadline_s=30)
            repl.type("/quit\r")
            await repl.wait_done()
    finally:
        assert await stop_mirror(serve) == 0
