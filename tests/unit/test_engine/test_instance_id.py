"""Instance ids for transactional producers: one slot per live process on a host, reused after a crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pyheart.broker.engine.runtime import claim_instance_id


def test_live_holders_get_different_slots(tmp_path: Path) -> None:
    """Two holders on one host get slots 0 and 1."""
    first, h1 = claim_instance_id(tmp_path, host="h")
    second, h2 = claim_instance_id(tmp_path, host="h")
    assert (first, second) == ("h-0", "h-1")
    h1.close()
    h2.close()


def test_released_slot_is_taken_again(tmp_path: Path) -> None:
    """When the holder of slot 0 goes away, the next claim takes slot 0 again (restart fences the old id)."""
    _, h0 = claim_instance_id(tmp_path, host="h")
    _, h1 = claim_instance_id(tmp_path, host="h")
    h0.close()
    again, h2 = claim_instance_id(tmp_path, host="h")
    assert again == "h-0"
    h1.close()
    h2.close()


def test_killed_process_releases_its_slot(tmp_path: Path) -> None:
    """A process killed with SIGKILL frees its slot (the kernel drops its lock)."""
    code = (
        "import sys, time; from pathlib import Path; "
        "from pyheart.broker.engine.runtime import claim_instance_id; "
        f"i, h = claim_instance_id(Path({str(tmp_path)!r}), host='h'); print(i, flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "h-0"
    taken, h = claim_instance_id(tmp_path, host="h")
    assert taken == "h-1"
    proc.kill()
    proc.wait(timeout=10)
    proc.stdout.close()
    h.close()
    freed, h0 = claim_instance_id(tmp_path, host="h")
    h0.close()
    assert freed == "h-0"
