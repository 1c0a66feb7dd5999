"""Request rates as written in settings ("1200/min"); plain Python, read by settings.py too."""

import functools

PERIODS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}


@functools.lru_cache(maxsize=64)  # read by every throttle on every API request; a few distinct rates
def rate_parse(rate: str | None) -> tuple[int, int] | None:
    """ "1200/min" -> (1200, 60); None, "", "0" or "none" -> None (no limit). Raises ValueError."""
    if rate is None or rate.strip().lower() in ("", "0", "none", "off"):
        return None
    count, _, period = rate.strip().partition("/")
    if not count.isdigit() or int(count) < 1 or period.strip().lower() not in PERIODS:
        raise ValueError(f"expected N/second, N/minute, N/hour or N/day (e.g. 1200/min), got {rate!r}")
    return int(count), PERIODS[period.strip().lower()]
