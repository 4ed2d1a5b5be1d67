#!/bin/bash
# EMR bootstrap action (Amazon Linux 2023), run on every node by the cluster that
# `python -m fmagenre.emr create-cluster` starts:
#   bootstrap.sh s3://BUCKET/PREFIX/dist/fmagenre-VERSION-py3-none-any.whl
#       installs Python 3.11 and fmagenre into /opt/fmagenre/venv ([emr] environment = bootstrap);
#   bootstrap.sh
#       installs Python 3.11 only, for the venv-pack archive the steps ship (environment = archive).
# soundfile's wheel carries libsndfile with MP3 support: no ffmpeg is needed.
set -euo pipefail

sudo dnf install -y -q python3.11 python3.11-pip
[ $# -eq 0 ] && exit 0

wheel_uri="$1"
venv=/opt/fmagenre/venv
sudo python3.11 -m venv "$venv"
workdir=$(mktemp -d)
aws s3 cp --quiet "$wheel_uri" "$workdir/"
sudo "$venv/bin/pip" install --quiet --upgrade pip
sudo "$venv/bin/pip" install --quiet "$workdir/$(basename "$wheel_uri")"
# The cluster's Spark provides pyspark (on PYTHONPATH); pip's copy would only shadow it.
sudo "$venv/bin/pip" uninstall -y -q pyspark py4j
"$venv/bin/python" -c "import fmagenre.features, soundfile; print('fmagenre ready:', soundfile.__libsndfile_version__)"
