#!/bin/bash
# EMR bootstrap action (Amazon Linux 2023), run on every node by the cluster that
# `python -m fmagenre.platform.emr create-cluster` starts:
#   bootstrap.sh s3://BUCKET/PREFIX/dist/fmagenre-VERSION-py3-none-any.whl [CONSTRAINTS_URI] [torch=BUILD]
#       installs Python 3.11 and fmagenre into /opt/fmagenre/venv ([emr] environment = bootstrap),
#       with pip constraints for the release's Spark when given (emr-7: constraints-spark35.txt),
#       and with torch=cpu (or a CUDA tag such as torch=cu128: [emr] torch) PyTorch 2.13.0 from
#       PyTorch's index for that build plus the wheel's dl extra (the spectrogram network),
#       then compiles the feature extractor's numba kernels into /opt/fmagenre/numba-cache;
#   bootstrap.sh
#       installs Python 3.11 only, for the venv-pack archive the steps ship (environment = archive).
# soundfile's wheel carries libsndfile with MP3 support: no ffmpeg is needed.
set -euo pipefail

sudo dnf install -y -q python3.11 python3.11-pip
[ $# -eq 0 ] && exit 0

wheel_uri="$1"
shift
constraints_uri=""
torch_build=""
for arg in "$@"; do
    case "$arg" in
        torch=*) torch_build="${arg#torch=}" ;;
        *) constraints_uri="$arg" ;;
    esac
done
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
wheel="$workdir/$(basename "$wheel_uri")"
if [ -n "$torch_build" ]; then
    # Plain pip would take PyPI's torch, a CUDA build of several GB: the chosen build first.
    sudo "$venv/bin/pip" install --quiet --index-url "https://download.pytorch.org/whl/$torch_build" torch==2.13.0
    wheel="$wheel[dl]"
fi
sudo "$venv/bin/pip" install --quiet "${constraints[@]}" "$wheel"
# The cluster's Spark provides pyspark (on PYTHONPATH); pip's copy would only shadow it.
sudo "$venv/bin/pip" uninstall -y -q pyspark py4j
"$venv/bin/python" -c "import fmagenre.audio.features, soundfile; print('fmagenre ready:', soundfile.__libsndfile_version__)"

# numba's cache, shared by every user: YARN containers run as yarn, client-mode drivers as
# hadoop. The cluster's configuration sets NUMBA_CACHE_DIR to it (spark-env, executorEnv,
# appMasterEnv). Warmed once here, with files that any user may update (umask 0).
sudo mkdir -p "$cache"
sudo chmod 1777 "$cache"
(umask 0000 && NUMBA_CACHE_DIR="$cache" "$venv/bin/python" -m fmagenre.audio.numba_cache)
