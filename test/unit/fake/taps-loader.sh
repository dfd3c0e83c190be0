#!/bin/sh
# Stands in for taps-loader in the taps runner's unit tests: called as
# `taps-loader -f json OBJECT...`, it prints its arguments as one line
# ({"type": "argv", ...}: output the daemon ignores) and then each OBJECT
# (recorded loader output: the attached line and records), and runs until
# it is signalled, as taps-loader does.
[ "$1" = "-f" ] && [ "$2" = "json" ] || { echo "fake taps-loader: unexpected arguments: $*" >&2; exit 64; }
shift 2
[ $# -ge 1 ] || { echo "usage: taps-loader [-f text|json] OBJECT..." >&2; exit 2; }
printf '{"type": "argv", "data": "%s"}\n' "$*"
for o in "$@"; do cat "$o"; done
exec sleep 1000
