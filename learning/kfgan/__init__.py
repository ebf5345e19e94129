"""Keyframe-guided GAN that restores compressed video-call frames (after Agnolucci et al.)."""
