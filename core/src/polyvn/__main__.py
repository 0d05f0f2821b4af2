"""``python -m polyvn`` runs the ``polyvn`` command."""

from polyvn.cli import run

run()
