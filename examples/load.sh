#!/usr/bin/env bash
# Load the example district, Adair County (001), from examples/district/: add the district
# and its schools, then import each object's file, parents before children. Extra
# arguments go to every import_records (as --skip-invalid, or --snapshot). Run it again
# and every row reads "unchanged": the district exists already, and is loaded into.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}

# The order of examples/make_examples.py's ORDER (manage.py resync_plan --catalog).
ORDER="District School CourseCode Calendar CourseSection ScheduleStructure StructureGradeLevel Day PersonIdentity Enrollment AttendanceExactCount Test TestScore"

if ! out=$("$PY" manage.py add_district --state KY --state-name Kentucky --code 001 --name "Adair County" \
    --year 2027 --school "010:Adair County High School" --school "020:Adair County Middle School" \
    --school "030:Adair County Elementary" --school "040:Adair Intermediate School" 2>&1); then
    case $out in
    *"exists already"*) echo "District 001 exists already: loading into it." ;;
    *) echo "$out" >&2; exit 1 ;;
    esac
else
    echo "$out"
fi

for obj in $ORDER; do
    echo "== $obj"
    "$PY" manage.py import_records --district 001 --object "$obj" "$@" "examples/district/$obj.csv"
done
