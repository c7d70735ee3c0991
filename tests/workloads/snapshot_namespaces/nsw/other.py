"""Where the rebound names come from."""
import json


class Ghost:
    x = 2
