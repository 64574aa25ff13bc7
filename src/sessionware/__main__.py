"""``python -m sessionware`` runs the command line."""

from .cli import main

main()
