"""Training-time augmentation for the CNN, as batched TensorFlow ops in the input pipeline.

Real uploads differ from MNIST's test set: digits drawn a little off-centre, tilted, larger or
smaller, with a thinner or thicker pen, photographed out of focus or in poor light. Each training
image gets one random affine transform (rotation, scaling, shift) and a random stroke-width
change; half of them are then blurred by a random amount, and half get Gaussian noise of a random
strength: the generic blur and noise of image augmentation (MNIST-C, the robustness benchmark
of ``bench/corruptions.py``, has neither: its noise is Poisson or salt and pepper, its blurs
glass and motion). Randomness is stateless and keyed by (seed, batch index), so a run is
reproducible whatever the pipeline's parallelism.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class Augmentation:
    max_rotation_deg: float = 12.0
    max_scale: float = 0.12  # scale factor in [1 - s, 1 + s]
    max_shift_px: float = 2.5
    stroke_probability: float = 0.5  # share of images whose stroke width changes
    blur_probability: float = 0.5  # share of images blurred, by an amount from 0 to 1
    noise_probability: float = 0.5  # share of images with Gaussian noise added ...
    max_noise: float = 0.3  # ... its standard deviation from 0 to this


def _affine(batch: tf.Tensor, seed: tf.Tensor, aug: Augmentation) -> tf.Tensor:
    n = tf.shape(batch)[0]
    max_angle = aug.max_rotation_deg * math.pi / 180
    angle = tf.random.stateless_uniform([n], seed, -max_angle, max_angle)
    zoom = 1.0 + tf.random.stateless_uniform([n], seed + 1, -aug.max_scale, aug.max_scale)
    dx = tf.random.stateless_uniform([n], seed + 2, -aug.max_shift_px, aug.max_shift_px)
    dy = tf.random.stateless_uniform([n], seed + 3, -aug.max_shift_px, aug.max_shift_px)
    # Output pixel (x, y) samples input at A @ (x - c, y - c) + c - shift, A = R(-angle) / zoom.
    c = 13.5
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    a0, a1 = cos, -sin
    b0, b1 = sin, cos
    a2 = c - a0 * c - a1 * c - dx
    b2 = c - b0 * c - b1 * c - dy
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=batch,
        transforms=transforms,
        output_shape=tf.shape(batch)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


def _chosen(n: tf.Tensor, seed: tf.Tensor, probability: float) -> tf.Tensor:
    return tf.cast(tf.random.stateless_uniform([n, 1, 1, 1], seed) < probability, tf.float32)


def _stroke(batch: tf.Tensor, seed: tf.Tensor, aug: Augmentation) -> tf.Tensor:
    n = tf.shape(batch)[0]
    strength = tf.random.stateless_uniform([n, 1, 1, 1], seed + 4, -1.0, 1.0)
    strength *= _chosen(n, seed + 5, aug.stroke_probability)
    dilated = tf.nn.max_pool2d(batch, 3, 1, "SAME")
    eroded = -tf.nn.max_pool2d(-batch, 2, 1, "SAME")
    thicker = batch + tf.maximum(strength, 0.0) * (dilated - batch)
    # Thinning is kept mild: a full erosion would erase MNIST's thinnest strokes.
    return thicker + 0.5 * tf.maximum(-strength, 0.0) * (eroded - batch)


def _gaussian_kernel(sigma: float, radius: int) -> tf.Tensor:
    taps = tf.exp(-0.5 * (tf.range(-radius, radius + 1, dtype=tf.float32) / sigma) ** 2)
    taps /= tf.reduce_sum(taps)
    return tf.reshape(taps[:, None] * taps[None, :], [2 * radius + 1, 2 * radius + 1, 1, 1])


def _degrade(batch: tf.Tensor, seed: tf.Tensor, aug: Augmentation) -> tf.Tensor:
    """Blur (a mix of the image and its Gaussian blur, sigma 1 px), then additive noise."""
    n = tf.shape(batch)[0]
    blurred = tf.nn.conv2d(batch, _gaussian_kernel(1.0, 2), 1, "SAME")
    amount = tf.random.stateless_uniform([n, 1, 1, 1], seed + 6)
    out = batch + _chosen(n, seed + 7, aug.blur_probability) * amount * (blurred - batch)
    sigma = aug.max_noise * tf.random.stateless_uniform([n, 1, 1, 1], seed + 8)
    sigma *= _chosen(n, seed + 9, aug.noise_probability)
    return out + sigma * tf.random.stateless_normal(tf.shape(batch), seed + 10)


def augment_batch(
    batch: tf.Tensor, batch_index: tf.Tensor, seed: int, aug: Augmentation = Augmentation()
) -> tf.Tensor:
    """Augment a float32 batch N x 28 x 28 x 1; deterministic in (seed, batch_index)."""
    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(batch_index, tf.int64)]) * 7
    out = _degrade(_stroke(_affine(batch, key, aug), key, aug), key, aug)
    return tf.clip_by_value(out, 0.0, 1.0)
