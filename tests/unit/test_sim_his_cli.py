"""`cccd-edge sim his` as engineers run it: a real process serving FHIR and, with --mllp-port,
HL7 v2 over MLLP, reached by the collector's own connectors; Ctrl-C stops it cleanly."""

import asyncio
import re
from pathlib import Path

from collector.forward.fhir import FhirConnector
from collector.forward.hl7v2 import Hl7v2Connector
from tools.simproc import SimProcess

from .his_visits import population_visits


def test_one_fake_his_takes_fhir_and_hl7v2(tmp_path: Path) -> None:
    proc = SimProcess(
        ["sim", "his", "--db", str(tmp_path / "his.db"), "--mllp-port", "0"], tmp_path / "his.log"
    )
    proc.start()
    try:
        assert proc.url.startswith("http://127.0.0.1:") and proc.url.endswith("/fhir")
        found = re.search(r"on mllp://127\.0\.0\.1:(\d+)", proc.output())
        assert found is not None, proc.output()
        first, second = population_visits(2)

        async def go() -> tuple[str, str]:
            fhir = FhirConnector(proc.url, timeout=5)
            v2 = Hl7v2Connector("127.0.0.1", int(found.group(1)), timeout=5)
            try:
                return await fhir.register(first), await v2.register(second)
            finally:
                await fhir.aclose()
                await v2.aclose()

        encounter, control_id = asyncio.run(go())
        assert encounter.startswith("Encounter/") and len(control_id) == 20
    finally:
        proc.stop()
    assert proc.proc is None and "Traceback" not in proc.output()
