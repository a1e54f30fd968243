"""What the benchmark runs: the five core variants, the extras (each one knob changed from a core variant)
and the seed's (the course's) augmentation."""

from __future__ import annotations

from dataclasses import dataclass

CORE = ("course_plain", "course_aug", "lab_plain", "lab_aug", "floor")
# The seed's (the course's) augmentation, as ImageDataGenerator keywords.
SEED_AUGMENTATION = {
    "rotation_range": 40,
    "width_shift_range": 0.2,
    "height_shift_range": 0.2,
    "shear_range": 0.2,
    "zoom_range": 0.2,
    "horizontal_flip": True,
    "fill_mode": "nearest",
}
RESCALE = 1 / 255


@dataclass(frozen=True)
class Variant:
    name: str
    pipeline: str  # "course", "lab" or "floor"
    augment: bool
    what: str
    base: str = ""  # the core variant an extra changes one thing of
    deterministic: bool = True  # lab.training.train's enable_op_determinism (which also turns Keras' auto-XLA off)
    jit_compile: bool | None = None  # None: as lab.training.model.build_model compiles it
    inter_op: int = 0  # tf.config.threading; 0: TensorFlow's default (the number of cores)
    intra_op: int = 0
    parallel_calls: int = 0  # the augmentation map's num_parallel_calls; 0: AUTOTUNE, as lab.training.pipeline does
    tfdata_threads: int = 0  # tf.data private thread pool size; 0: the shared default
    uint8_to_model: bool = False  # hand uint8 batches to the model, which rescales in its first layer
    onednn: bool = True  # TF_ENABLE_ONEDNN_OPTS
    course_workers: int = 0  # PyDataset workers for the course's iterator; 0: Keras' default (1: in-line)
    index_shuffle: bool = False  # decoded images in one uint8 array; shuffle indices, gather batches
    in_data: bool = False  # augment in the tf.data map (as the lab did before issue 15), not in the training step

    @property
    def augments_in_data(self) -> bool:
        """Whether the pipeline itself augments: then the model must not augment again in its training step."""
        # XLA cannot compile the resample in the training step: an XLA variant augments in its map.
        own_map = self.parallel_calls or self.tfdata_threads or self.index_shuffle or self.in_data or self.jit_compile
        return self.pipeline == "lab" and self.augment and bool(own_map)


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("course_plain", "course", False, "ImageDataGenerator(rescale=1/255).flow_from_directory"),
        Variant("course_aug", "course", True, "ImageDataGenerator with the seed's augmentation"),
        Variant("lab_plain", "lab", False, "lab.training.pipeline.training_pipeline, no augmentation"),
        Variant("lab_aug", "lab", True, "training_pipeline; the model augments in its training step"),
        Variant("floor", "floor", False, "decoded float32 tensors in memory, batched and cached"),
    )
}
EXTRAS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("floor_xla", "floor", False, "XLA (jit_compile=True, op determinism off)", "floor", False, True),
        Variant("lab_plain_xla", "lab", False, "XLA (jit_compile=True, op determinism off)", "lab_plain", False, True),
        Variant("lab_aug_xla", "lab", True, "XLA (jit_compile=True, op determinism off)", "lab_aug", False, True),
        Variant("lab_aug_nodet", "lab", True, "op determinism off, XLA off", "lab_aug", False, False),
        Variant("lab_aug_inter1", "lab", True, "inter-op threads 1", "lab_aug", inter_op=1),
        Variant("lab_aug_intra1", "lab", True, "intra-op threads 1", "lab_aug", intra_op=1),
        Variant("lab_aug_in_data", "lab", True, "augmentation in the tf.data map (before)", "lab_aug", in_data=True),
        Variant("lab_aug_par1", "lab", True, "augmentation map num_parallel_calls=1", "lab_aug", parallel_calls=1),
        Variant("lab_aug_tfdata1", "lab", True, "tf.data private thread pool of 1", "lab_aug", tfdata_threads=1),
        Variant("lab_plain_u8", "lab", False, "uint8 batches, rescaled in the model", "lab_plain", uint8_to_model=True),
        Variant("floor_noonednn", "floor", False, "TF_ENABLE_ONEDNN_OPTS=0", "floor", onednn=False),
        Variant("lab_aug_noonednn", "lab", True, "TF_ENABLE_ONEDNN_OPTS=0", "lab_aug", onednn=False),
        Variant("course_aug_w2", "course", True, "PyDataset workers=2 (threads)", "course_aug", course_workers=2),
        Variant("lab_aug_index", "lab", True, "one uint8 array, shuffled indices", "lab_aug", index_shuffle=True),
    )
}
