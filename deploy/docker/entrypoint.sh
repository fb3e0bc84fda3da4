#!/bin/sh
# Entrypoint of the veeam-em-exporter container image.
#
# Uses /etc/veeam-em-exporter/config.yml when that file exists and no --config.file is given;
# without the file (and without --config.file) the exporter configures one server from the
# VEEAM_EM_* environment variables. Every argument is passed on unchanged; a command
# (`assets DIR`) is passed on without the default configuration, which it does not take.
#
# `exec` replaces this shell with the exporter, so the exporter is PID 1 and receives the
# SIGTERM of `docker stop` itself (it then logs out of every EM and exits 0).
set -eu

default_config=/etc/veeam-em-exporter/config.yml

if [ "${1:-}" = assets ]; then
    exec veeam-em-exporter "$@"
fi

for arg in "$@"; do
    case "$arg" in
        --config.file | --config.file=*) exec veeam-em-exporter "$@" ;;
    esac
done

if [ -e "$default_config" ]; then
    exec veeam-em-exporter "--config.file=$default_config" "$@"
fi
exec veeam-em-exporter "$@"
