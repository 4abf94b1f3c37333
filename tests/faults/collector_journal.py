"""`cwatch collector --config FILE`, plus a journal of every sample it stored.

    python tests/faults/collector_journal.py CONFIG JOURNAL

The same Collector the command runs. Its state store is wrapped so that each batch
the store committed is appended to the journal right after the commit, in one
write() of an unbuffered file: a SIGKILL leaves whole batches in the journal, and
the journal says exactly which envelopes reached the state store (and were handed to
the time-series writer just before). One line per sample:
"site device channel seq ts stored_at".
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from pathlib import Path

from collector.config import load
from collector.ingest import Sample
from collector.service import Collector


def main(config_path: str, journal_path: str) -> int:
    config = load(Path(config_path), {})
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    journal = open(journal_path, "ab", buffering=0)  # noqa: SIM115 (lives as long as we do)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    collector = Collector(config)
    apply_many = collector.state.apply_many

    def apply_and_note(batch: list[Sample]) -> list[tuple[Sample, Exception]]:
        failed = apply_many(batch)
        bad = {id(sample) for sample, _ in failed}
        now = repr(time.time())
        journal.write("".join(
            f"{s.site} {s.device} {s.channel} {s.seq} {s.ts!r} {now}\n"
            for s in batch if id(s) not in bad).encode())
        return failed

    collector.state.apply_many = apply_and_note  # type: ignore[method-assign]
    collector.start()
    stop.wait()
    logging.getLogger(__name__).info("stopping")
    collector.stop()
    journal.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
