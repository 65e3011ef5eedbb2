"""Engines that write mirrorbacks: see ``base.Engine``; ``offline`` needs no model."""
