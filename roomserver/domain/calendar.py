"""The iCalendar (RFC 5545) entry sent with an invitation: REQUEST, and CANCEL when it is withdrawn.

Written with ``icalendar``. The VTIMEZONE is written here from the EU rule (summer time
from the last Sunday of March 02:00 to the last Sunday of October 03:00, local time)
rather than generated from the tz database, so every calendar program gets the same
recurring rule and the entry keeps the right wall-clock time across a change of
daylight saving time.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, Timezone, TimezoneDaylight, TimezoneStandard, vCalAddress, vRecur, vText

PRODID = "-//roomserver//Videoberatung//DE"


def _eu_zone(tzid: str) -> Timezone:
    """A VTIMEZONE for a zone on the EU summer-time rule (Europe/Berlin and its neighbours)."""
    zone = ZoneInfo(tzid)
    winter = datetime(2025, 1, 15, tzinfo=zone).utcoffset() or timedelta(0)
    summer = datetime(2025, 7, 15, tzinfo=zone).utcoffset() or timedelta(0)
    names = (datetime(2025, 1, 15, tzinfo=zone).tzname() or "STD", datetime(2025, 7, 15, tzinfo=zone).tzname() or "DST")
    tz = Timezone()
    tz.add("tzid", tzid)
    if winter == summer:
        std = TimezoneStandard()
        std.add("dtstart", datetime(1970, 1, 1))
        std.add("tzoffsetfrom", winter)
        std.add("tzoffsetto", winter)
        std.add("tzname", names[0])
        tz.add_component(std)
        return tz
    dst = TimezoneDaylight()
    dst.add("dtstart", datetime(1970, 3, 29, 2, 0, 0))
    dst.add("rrule", vRecur(freq="yearly", bymonth=3, byday="-1SU"))
    dst.add("tzoffsetfrom", winter)
    dst.add("tzoffsetto", summer)
    dst.add("tzname", names[1])
    std = TimezoneStandard()
    std.add("dtstart", datetime(1970, 10, 25, 3, 0, 0))
    std.add("rrule", vRecur(freq="yearly", bymonth=10, byday="-1SU"))
    std.add("tzoffsetfrom", summer)
    std.add("tzoffsetto", winter)
    std.add("tzname", names[0])
    tz.add_component(dst)
    tz.add_component(std)
    return tz


def ics(*, method: str, uid: str, sequence: int, start: int, end: int, tzid: str, summary: str,
        description: str, url: str | None, organizer: str, organizer_name: str, attendee: str, now: int) -> bytes:
    """One VEVENT in a VCALENDAR with ``method`` (REQUEST or CANCEL); times are unix seconds."""
    zone = ZoneInfo(tzid)
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)
    cal.add_component(_eu_zone(tzid))
    event = Event()
    event.add("uid", uid)
    event.add("sequence", sequence)
    event.add("dtstamp", datetime.fromtimestamp(now, timezone.utc))
    # Wall-clock time in the zone, with TZID: the calendar shows it at the same local time all year.
    event.add("dtstart", datetime.fromtimestamp(start, zone).replace(tzinfo=None), parameters={"TZID": tzid})
    event.add("dtend", datetime.fromtimestamp(end, zone).replace(tzinfo=None), parameters={"TZID": tzid})
    event.add("summary", vText(summary))
    event.add("description", vText(description))
    if url:
        event.add("url", url)
        event.add("location", vText(url))
    org = vCalAddress(f"mailto:{organizer}")
    org.params["cn"] = vText(organizer_name)
    event.add("organizer", org)
    who = vCalAddress(f"mailto:{attendee}")
    who.params["role"] = vText("REQ-PARTICIPANT")
    who.params["partstat"] = vText("NEEDS-ACTION")
    event.add("attendee", who)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("transp", "OPAQUE")
    cal.add_component(event)
    return cal.to_ical()
