"""Visits of synthetic citizens (sim/citizens.py), as the collector hands them to a HIS connector."""

import datetime

from collector.forward.his import Coverage, Visit
from sim import citizens
from sim.citizens import Citizen

FACILITY = "79014"
TODAY = datetime.date(2025, 3, 3)
VIETNAM = datetime.timezone(datetime.timedelta(hours=7))
ARRIVED = datetime.datetime(2025, 3, 3, 8, 15, 30, tzinfo=VIETNAM)

# The Result status of each insurance state's check (collector/forward/insurance.py's table).
_STATUS = {
    "valid": "ok",
    "defence": "ok",
    "police": "ok",
    "replaced_expired": "warn",
    "replaced_valid": "warn",
    "child_no_card": "warn",
}


def visit_of(person: Citizen, seq: int = 1, device: str = "quay-1") -> Visit:
    """The visit of ``person`` at a counter: the card's identity and the check's outcome."""
    status = _STATUS.get(person.insurance, "reject")
    card = person.card if status != "reject" else None
    coverage = None
    if card is not None:
        coverage = Coverage(
            card=card.number,
            code=citizens.BHXH_CODES[person.insurance],
            valid_from=card.valid_from.isoformat(),
            valid_to=None if card.valid_to is None else card.valid_to.isoformat(),
            kcbbd=card.kcbbd,
        )
    return Visit(
        facility=FACILITY,
        device=device,
        seq=seq,
        arrived=ARRIVED + datetime.timedelta(minutes=seq),
        name=person.name,
        dob=str(person.dob.year) if person.dob_year_only else person.dob.isoformat(),
        sex=person.sex,
        address=person.address,
        cccd=person.cccd,
        cmnd=person.cmnd,
        coverage=coverage,
        insurance=status,
    )


def population_visits(n: int, seed: int = 3) -> list[Visit]:
    """One visit for each of ``n`` synthetic citizens, every insurance state among them."""
    return [visit_of(person, seq) for seq, person in enumerate(citizens.population(n, seed, TODAY), 1)]
