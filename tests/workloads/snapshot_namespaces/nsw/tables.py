"""Like packaging's licenses/_spdx.py: typed dicts and big constant tables."""
from typing import TypedDict


class License(TypedDict):
    id: str
    deprecated: bool


class Exception_(TypedDict):
    id: str
    deprecated: bool


VERSION = "3.25.0"

COLORS: dict[str, License] = {
    "red": {"id": "R", "deprecated": False},
    "green": {"id": "G", "deprecated": False},
    "blue": {
        "id": "B",
        "deprecated": True,
    },
    "gray": {"id": "GR", "deprecated": False},
}

LEVELS = [
    1,
    -2,
    3.5,
    None,
    b"raw",
    ("nested", 2**40),
]

SHORT = ["too", "short"]

EXCEPTIONS: dict[str, Exception_] = {
    "e1": {"id": "E1", "deprecated": False},
    "e2": {"id": "E2", "deprecated": False},
    "e3": {"id": "E3", "deprecated": True},
    "e4": {"id": "E4", "deprecated": False},
}
