"""What crosses between the engines and the learner, and the engines themselves.

The records (`generation`: what an engine is asked and gives back, and the model and
engine configs; `rollout`: a played episode), both weight transports (`weights`: bytes
through the object store; `weight_broadcast`: torch.distributed), and the two engine
backends behind one `Engine` protocol (`backend`). Both the actors (which run the
engines) and the learner (which trains on rollouts and sends weights) import this layer;
neither imports the other for it. Importing it is light: the backends load vLLM or
transformers only when an engine is made.
"""
