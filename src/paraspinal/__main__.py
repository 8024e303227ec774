"""``python -m paraspinal``: the same as the ``paraspinal`` command."""

from paraspinal.cli.entry import run

if __name__ == "__main__":
    run()
