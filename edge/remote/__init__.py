"""Remote devices: run ``edge profile``, ``edge run`` and ``edge detect`` on boards over SSH.

The host side of a remote run. ``devices`` parses ``ssh://`` URLs and fleet files, ``ssh``
talks to one device through the system's OpenSSH client, ``agent`` is what the device's own
``python3`` runs before edge is there (digests, file transfer), ``session`` takes one device
from login to result, ``wheels`` gathers what ``--bootstrap`` installs, and ``fleet`` runs a
job on many devices at once. Nothing here imports what builds models.
"""
