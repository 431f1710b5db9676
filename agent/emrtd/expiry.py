"""Expiry date candidates for BAC when only the QR code (birth and issue dates) has been read.

A CCCD's chip key needs the card's expiry date, which its QR code does not carry. The renewal rules
give it from the birth and issue dates:

- CCCD law 2014 (Luật Căn cước công dân), art. 21: the card is renewed at 25, 40 and 60; a card
  issued within 2 years before one of those ages stays valid until the next one; one issued at 58 or
  later does not expire.
- Căn cước law 2023 (Luật Căn cước, cards issued from 2024-07-01), art. 21: the same, with 14 added
  to the ages (cards are issued to children too).

The card expires on the holder's birthday at the renewal age. ``candidates`` lists the likely dates
first: the rule of the card's own law, then the other law's, then the neighbouring renewal ages (an
issue date misread or a card issued under transitional rules), then no expiry.
"""

from __future__ import annotations

import datetime

LAW_2023_FROM = datetime.date(2024, 7, 1)
AGES_2014 = (25, 40, 60)
AGES_2023 = (14, 25, 40, 60)
NO_EXPIRY = "<<<<<<"  # the BAC field of a card without expiry (assumed, see bac.mrz_information)


def birthday(dob: datetime.date, age: int) -> datetime.date:
    try:
        return dob.replace(year=dob.year + age)
    except ValueError:  # born on 29 February
        return dob.replace(year=dob.year + age, day=28)


def by_rule(dob: datetime.date, issued: datetime.date, ages: tuple[int, ...]) -> datetime.date | None:
    """The expiry of a card issued on ``issued`` under renewal ``ages`` (None: no expiry)."""
    for age in ages:
        milestone = birthday(dob, age)
        if issued < birthday(milestone, -2):
            return milestone
    return None


def _yymmdd(day: datetime.date | None) -> str:
    return day.strftime("%y%m%d") if day else NO_EXPIRY


def candidates(dob: datetime.date, issued: datetime.date) -> list[str]:
    """Expiry dates (``YYMMDD``, or ``NO_EXPIRY``) to try for BAC, the likeliest first."""
    laws = (AGES_2023, AGES_2014) if issued >= LAW_2023_FROM else (AGES_2014, AGES_2023)
    out = [_yymmdd(by_rule(dob, issued, ages)) for ages in laws]
    out += [_yymmdd(birthday(dob, age)) for age in AGES_2023 if birthday(dob, age) > issued]
    out.append(NO_EXPIRY)
    return list(dict.fromkeys(out))
