"""xephang — queue machine and announcements for Vietnamese commune public-service centres."""

__version__ = "0.1.0"
