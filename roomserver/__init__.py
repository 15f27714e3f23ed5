"""Room server for networked hybrid counselling.

Creates a video room per consultation, signs short-lived single-use tokens,
rings the experts of a department and relays WebRTC signalling between
browsers. Media flows browser to browser; the server never carries it.
"""

__version__ = "0.1.0"
