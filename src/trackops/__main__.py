from trackops.cli.main import run

run()
