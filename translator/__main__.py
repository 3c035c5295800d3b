from translator.cli import run_cli

run_cli()
