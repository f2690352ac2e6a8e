"""The model core that training and serving share, so the two cannot drift apart.

- ``imaging``: any image to a 28x28 input in MNIST's own format, and inputs to model tensors;
- ``artifact``: the versioned model artifact (format, metadata, loading and saving);
- ``lite``: the artifact's ``model.tflite`` run by LiteRT, for batches (what the service runs);
- ``classifier``: a loaded artifact with its TensorFlow forward pass compiled once, for batches;
- ``calibration``: temperature scaling and the expected calibration error;
- ``corrections``: the corrections file that ``mnist-api export-labels`` writes and training reads;
- ``runtime``: TensorFlow, imported once and quietly;
- ``errors``: the errors a person is shown as one line.

It imports neither ``mnist_train`` nor ``mnist_api``.
"""
