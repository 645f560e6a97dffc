"""Image loading (IDX, image folders, CIFAR-10, safetensors) and batched tensor augmentations."""

from nanofm.vision.augment import AugmentConfig, augment, normalize, random_flip, random_resized_crop, random_translate
from nanofm.vision.io import (
    ImageSet,
    UnsafePickleError,
    load_cifar10,
    load_idx,
    load_image,
    load_image_folder,
    load_image_set,
    read_idx,
    save_image_set,
)

__all__ = [
    "AugmentConfig", "ImageSet", "UnsafePickleError", "augment", "load_cifar10", "load_idx", "load_image",
    "load_image_folder", "load_image_set", "normalize", "random_flip", "random_resized_crop", "random_translate",
    "read_idx", "save_image_set",
]
