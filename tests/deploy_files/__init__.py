"""The deploy files of every supported answer are valid and agree with each other."""
