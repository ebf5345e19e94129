"""On-policy and off-policy RL: PPO, PROPS, MDPO (on- and off-policy), SAC; one readable file per algorithm."""
