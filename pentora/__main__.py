from pentora.cli import run

run()
