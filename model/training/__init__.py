"""Training machinery, kept apart from the ConvNet itself (model/layers.py, network.py,
optim.py, weights.py): datasets, augmentation, the trainer and its worker processes,
evaluation, and the allocator tuning a training process wants.

    from model.training.train import TrainConfig, train
    from model.training.datasets import load_split
    from model.training.evaluate import evaluate

Importing this package loads nothing: each module is imported where it is used.
"""
