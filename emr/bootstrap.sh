#!/bin/bash
# EMR bootstrap action (Amazon Linux 2023), run on every node by the cluster that
# `python -m fmagenre.platform.emr create-cluster` starts:
#   bootstrap.sh s3://BUCKET/PREFIX/dist/fmagenre-VERSION-py3-none-any.whl [CONSTRAINTS_URI]
#       installs Python 3.11 and fmagenre into /opt/fmagenre/venv ([emr] environment = bootstrap),
#       with pip constraints for the release's Spark when given (emr-7: constraints-spark35.txt),
#       then compiles the feature extractor's numba kernels into /opt/fmagenre/numba-cache;
#   bootstrap.sh
#       installs Python 3.11 only, for the venv-pack archive the steps ship (environment = archive).
# soundfile's wheel carries libsndfile with MP3 support: no ffmpeg is needed.
set -euo pipefail

sudo dnf install -y -q python3.11 python3.11-pip
[ $# -eq 0 ] && exit 0

wheel_uri="$1"
constraints_uri="${2:-}"
venv=/opt/fmagenre/venv
cache=/opt/fmagenre/numba-cache
sudo python3.11 -m venv "$venv"
workdir=$(mktemp -d)
aws s3 cp --quiet "$wheel_uri" "$workdir/"
constraints=()
if [ -n "$constraints_uri" ]; then
    aws s3 cp --quiet "$constraints_uri" "$workdir/constraints.txt"
    constraints=(-c "$workdir/constraints.txt")
fi
sudo "$venv/bin/pip" install --quiet --upgrade pip
sudo "$venv/bin/pip" install --quiet "${constraints[@]}" "$workdir/$(basename "$wheel_uri")"
# The cluster's Spark provides pyspark (on PYTHONPATH); pip's copy would only shadow it.
sudo "$venv/bin/pip" uninstall -y -q pyspark py4j
"$venv/bin/python" -c "import fmagenre.audio.features, soundfile; print('fmagenre ready:', soundfile.__libsndfile_version__)"

# numba's cache, shared by every user: YARN containers run as yarn, client-mode drivers as
# hadoop. The cluster's configuration sets NUMBA_CACHE_DIR to it (spark-env, executorEnv,
# appMasterEnv). Warmed once here, with files that any user may update (umask 0).
sudo mkdir -p "$cache"
sudo chmod 1777 "$cache"
(umask 0000 && NUMBA_CACHE_DIR="$cache" "$venv/bin/python" -m fmagenre.audio.numba_cache)
