"""`python -m bench --records N [--workers K] [--json PATH] …`: the benchmark, with the project's settings.

`python -m bench import --records N …` benchmarks a file's import instead (bench/imports.py).
`python -m bench state --districts N --records M …` one state request for N districts (bench/state.py).
`python -m bench verify --records N [--changed 0.01] …` a verification against the floor (bench/verify.py).

bench is not in INSTALLED_APPS, so `manage.py` has no bench command and
production never imports it: this entry point sets Django up and runs it.
"""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "statesync.settings")
    import django

    django.setup()
    if sys.argv[1:2] == ["import-once"]:  # the import benchmark's child process
        import json

        from bench.imports import import_once

        print(json.dumps(import_once(sys.argv[2])))
        return
    if sys.argv[1:2] == ["import"]:
        from bench.imports import Command as ImportCommand

        ImportCommand().run_from_argv(["python -m", "bench import", *sys.argv[2:]])
        return
    if sys.argv[1:2] == ["state"]:  # a state request for many districts (bench/state.py)
        from bench.state import Command as StateCommand

        StateCommand().run_from_argv(["python -m", "bench state", *sys.argv[2:]])
        return
    if sys.argv[1:2] == ["verify"]:  # a verification against the floor (bench/verify.py)
        from bench.verify import Command as VerifyCommand

        VerifyCommand().run_from_argv(["python -m", "bench verify", *sys.argv[2:]])
        return
    from bench.command import Command

    # run_from_argv prints usage and CommandError messages and exits non-zero, as manage.py would.
    Command().run_from_argv(["python -m", "bench", *sys.argv[1:]])


if __name__ == "__main__":
    main()
