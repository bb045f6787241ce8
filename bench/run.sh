#!/bin/sh
# The benchmark suite behind `make bench` (which builds bin/gatehouse first):
# builds the driver and runs every case, writing BENCHMARKS.md. Extra
# arguments go to the driver, e.g. ./bench/run.sh -size 1024 -sessions 100.
set -eu
cd "$(dirname "$0")/.."
go build -o bin/ghbench ./bench/cmd/ghbench
if [ $# -gt 0 ]; then
	GHBENCH_COMMAND="./bench/run.sh $*"
else
	GHBENCH_COMMAND="make bench"
fi
export GHBENCH_COMMAND
exec ./bin/ghbench -gatehouse bin/gatehouse "$@"
