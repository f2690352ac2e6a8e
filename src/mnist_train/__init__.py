"""Training of MNIST digit classifiers with TensorFlow/Keras, written as versioned artifacts."""

__version__ = "1.0.0"
