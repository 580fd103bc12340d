"""Views of a ``DoctorReport``: terminal (Rich), JSON, SARIF 2.1.0, and the generated rules document."""
