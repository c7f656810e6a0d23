"""In-repo CR-FIQA training: RecordIO, training datasets, objective, trainer, configs."""
