"""Make ``reference.npz``: the ORIGINAL musicnn ``MSD_musicnn`` model's outputs on three WAVs.

Not part of the test suite. Two steps (README.md in this directory has the versions):

1. The WAVs, with the project's venv (Python 3.11, fmagenre's synthetic music)::

       .venv/bin/python tests/data/musicnn/make_reference.py wavs

2. The reference, in a throwaway Python 3.7 venv with TensorFlow 1 and musicnn::

       ~/.pyenv/versions/3.7.16/bin/python -m venv /tmp/tf1
       /tmp/tf1/bin/pip install tensorflow==1.15.5 musicnn==0.1.0 protobuf==3.20.3
       /tmp/tf1/bin/python tests/data/musicnn/make_reference.py reference

Step 2 computes each file's input patches with musicnn's own preprocessing
(``musicnn.extractor.batch_data``: ``librosa.load`` at 16 kHz, its mel spectrogram, the float16
cast, ``log10(10000 x + 1)``, patches of 187 frames without overlap), then runs musicnn's own
graph (``musicnn.models.define_model``, as ``musicnn.extractor.extractor`` builds it) restored
from the package's checkpoint, one patch per run as the extractor does, and stores per file
``NAME/patches`` (as computed: float32), ``NAME/penultimate`` and ``NAME/taggram`` (float32).
It does not take the penultimate layer from ``extractor()``: for every patch after the first,
that function returns the first patch's values again (it concatenates the first run's array).
The taggram of ``extractor()`` is checked against the graph's before anything is written.
"""

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
#: WAV name -> (style of fmagenre.synthetic.music, seconds, seed, peak level).
FILES = {
    "rock": ("Rock", 7.0, 1, 0.9),
    "classical": ("Classical", 8.0, 2, 0.5),
    "hiphop": ("Hip-Hop", 9.5, 3, 0.7),
}
SR = 16000
N_FRAMES = 187


def make_wavs():
    import soundfile as sf

    from fmagenre.synthetic.music import render

    for name, (style, seconds, seed, peak) in FILES.items():
        y = render(style, duration=seconds, sr=SR, seed=seed)
        y = y * (peak / np.max(np.abs(y)))
        sf.write(os.path.join(HERE, name + ".wav"), y, SR, subtype="PCM_16")
        print("wrote", name + ".wav", y.size, "samples")


def make_reference():
    import tensorflow as tf
    from musicnn import configuration, extractor, models

    model = "MSD_musicnn"
    labels = configuration.MSD_LABELS
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, N_FRAMES, configuration.N_MELS])
        is_training = tf.compat.v1.placeholder(tf.bool)
        outputs = models.define_model(x, is_training, model, len(labels))
        tags = tf.nn.sigmoid(outputs[0])
        penultimate = outputs[-1]
    session = tf.compat.v1.Session()
    session.run(tf.compat.v1.global_variables_initializer())
    checkpoint = os.path.join(os.path.dirname(extractor.__file__), model) + "/"
    tf.compat.v1.train.Saver().restore(session, checkpoint)

    arrays = {"tags": np.array(labels)}
    for name in FILES:
        path = os.path.join(HERE, name + ".wav")
        batch, _ = extractor.batch_data(path, N_FRAMES, N_FRAMES)
        emb, tag = [], []
        for k in range(batch.shape[0]):  # one patch per run, as extractor() feeds them
            out = session.run([penultimate, tags], {x: batch[k : k + 1], is_training: False})
            emb.append(out[0])
            tag.append(out[1])
        emb, tag = np.concatenate(emb), np.concatenate(tag)
        taggram, _ = extractor.extractor(path, model=model, extract_features=False)
        gap = np.max(np.abs(taggram - tag))
        if gap > 1e-6:
            sys.exit(f"{name}: extractor() taggram differs from the graph's by {gap}")
        arrays[name + "/patches"] = batch
        arrays[name + "/penultimate"] = emb.astype(np.float32)
        arrays[name + "/taggram"] = tag.astype(np.float32)
        print(name, batch.shape, batch.dtype, "finite:", bool(np.all(np.isfinite(batch))))
    session.close()
    np.savez_compressed(os.path.join(HERE, "reference.npz"), **arrays)
    print("wrote reference.npz")


if __name__ == "__main__":
    step = sys.argv[1] if len(sys.argv) > 1 else ""
    if step == "wavs":
        make_wavs()
    elif step == "reference":
        make_reference()
    else:
        sys.exit("usage: make_reference.py wavs|reference")
