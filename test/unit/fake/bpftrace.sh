#!/bin/sh
# Stands in for bpftrace in the ingest unit tests: called as `bpftrace -f json
# FILE`, it prints FILE (recorded bpftrace output) and then either exits with
# $FAKE_BPFTRACE_EXIT or runs until it is signalled, as bpftrace does. With
# $FAKE_BPFTRACE_FOLLOW set it prints FILE and then what is appended to it,
# until it is signalled (a test writing events as they happen).
[ "$1" = "-f" ] && [ "$2" = "json" ] || { echo "fake bpftrace: unexpected arguments: $*" >&2; exit 64; }
if [ -n "${FAKE_BPFTRACE_FOLLOW:-}" ]; then exec tail -n +1 -s 0.02 -f "$3"; fi
cat "$3"
if [ -n "${FAKE_BPFTRACE_STDERR:-}" ]; then echo "$FAKE_BPFTRACE_STDERR" >&2; fi
if [ -n "${FAKE_BPFTRACE_EXIT:-}" ]; then exit "$FAKE_BPFTRACE_EXIT"; fi
exec sleep 1000
